"""beeline's default transmission: batches events to Honeycomb's Events API.

It implements libhoney's ``transmission_impl`` interface (``start``, ``send``, ``close``,
``flush``, ``get_response_queue``), so libhoney's ``Client`` drives it unchanged, and libhoney's
own ``Transmission``, ``FileTransmission`` or any user object can still be passed instead.
"""

from beeline.transmission.default import BeelineTransmission, user_agent

__all__ = ["BeelineTransmission", "user_agent"]
