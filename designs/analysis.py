"""Transitional: machines/printing.py (and tests/printing/factories.py) still do
`from designs import analysis`.

The reads now live in `designs.selectors` and the queueing and running in
`designs.services`; delete this module when those two switch (at the merge of the
restructuring).
"""

from designs.selectors import analyses_for_blobs, declared_units, figures_at
from designs.services.analysis import analyses_queue, analyses_run

__all__ = ["analyses_for_blobs", "analyses_queue", "analyses_run", "declared_units", "figures_at"]
