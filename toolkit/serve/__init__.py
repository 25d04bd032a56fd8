"""Start and stop Triton: the embedded server from the nvidia-pytriton wheel or NVIDIA's container.

``EmbeddedServer`` and the port helpers import only the standard library, so importing this
package stays cheap; the container pieces live in :mod:`toolkit.serve.container`.
"""

from toolkit.serve.embedded import EmbeddedServer
from toolkit.serve.ports import free_port, port_in_use

__all__ = ["EmbeddedServer", "free_port", "port_in_use"]
