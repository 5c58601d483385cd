"""fabhub-agent: drives a lab's printers for a fabhub hub from inside the lab's network.

It dials out to the hub (the hub never connects into the lab), keeps the printers'
addresses and keys in its own configuration, and drives them with the hub's own driver
modules (`machines.printing.drivers`). It needs Python 3.11 and `requests`, nothing of
Django: docs/agent.md shows how to install only it.
"""

__version__ = "1.0"
