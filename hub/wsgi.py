import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
application = get_wsgi_application()

# The embedded set-up's print queue clock (machines/ticker.py); does nothing with a broker.
from machines.ticker import start_embedded_ticker  # noqa: E402

start_embedded_ticker()

# The embedded set-up's mirror schedule (designs/mirrors.py); does nothing with a broker.
from designs.mirrors import start_embedded_ticker as start_mirror_ticker  # noqa: E402

start_mirror_ticker()
