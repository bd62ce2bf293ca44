"""The instructor's cockpit: projector view and class dashboard (server.py), the chat as the
projector shows it (room.py), the learners' progress (board.py), QR codes (qr.py)."""
