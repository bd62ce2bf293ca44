# The step checks' fixtures and plain-words failure reports live in workshop/pytest_plugin.py.
pytest_plugins = ["workshop.pytest_plugin"]
