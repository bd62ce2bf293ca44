# The step checks' fixtures and plain-words failure reports live in workshop/pytest_plugin.py;
# workshop/share_plugin.py sends the results to the instructor once a learner ran `make share`.
pytest_plugins = ["workshop.pytest_plugin", "workshop.share_plugin"]
