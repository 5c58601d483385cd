import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
application = get_wsgi_application()

# The embedded set-up's periodic work (each app registers its own in AppConfig.ready);
# does nothing with a broker, where Celery beat runs the same functions.
from hub.ticker import start_registered_tickers  # noqa: E402

start_registered_tickers()
