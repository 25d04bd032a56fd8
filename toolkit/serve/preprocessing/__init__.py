"""The python-backend preprocessing model that lets clients send raw or encoded images."""
