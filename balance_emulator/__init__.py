"""balance_emulator: a stand-in for Balance, the company's central billing system.

A separate program (`balance-emulator`, or `python3.11 -m balance_emulator`) that speaks
Balance's XML-RPC dialect over HTTP, keeps its state in its own SQLite file and sends
`NotifyOrder2` callbacks. billy reaches it only over HTTP: billy_core never imports this
package, and this package never imports billy_core. Standard library only, so it starts
without billy's virtualenv. See README.md in this folder.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
