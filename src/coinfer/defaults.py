"""Every default a command, a world or a learner starts from, defined once.

Classes: the edge of every paper's testbed is a desktop-class PC, modelled by Edgent's published
regression (``edge-pc``); a simulated device is that PC 8x slower, a Raspberry-Pi-4-class CPU
(VGG16 5.9 s, tiny-YOLOv2 2.4 s per frame); a plan, unless told otherwise, is for Edgent's
published Raspberry Pi 3; a live device is this host as it is (``host``).
"""

from __future__ import annotations

EDGE_CLASS = "edge-pc"  # Edgent's desktop-PC regression (Li, Zhou, Chen 2018, Table 2)
SIM_DEVICE_CLASS = "edge-pc/8"  # a Raspberry-Pi-4-class device, for the simulated worlds
PLAN_DEVICE_CLASS = "rpi3"  # Edgent's published Raspberry Pi 3, for plans
LIVE_DEVICE_CLASS = "host"  # a live device runs as this machine does, unless emulated

DISCOUNT = 0.99  # γ of the discounted learners (mulinucb-discounted, mulinucb-link)
NOISE = 0.1  # log-normal standard deviation of every simulated measurement
# the learners' delay unit: the device's whole-model time / 60 (about 0.1 s for VGG16 on a
# Pi-4-class device), so that exploration means the same on a fast device as on a slow one;
# never below MIN_DELAY_UNIT_S
DELAY_UNIT_FRACTION = 60
MIN_DELAY_UNIT_S = 1e-4

RTT_S = 0.02  # the simulated worlds' and the demos' round trip (a 3G/LTE link's)
EDGE_TIMEOUT_S = 5.0  # a live device's wait from the end of an upload to the whole reply
LATENCY_REQ_S = 0.1  # Edgent's latency requirement in the demo and simulations
