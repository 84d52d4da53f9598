"""Neurosurgeon's experiment: the chosen cut and its latency as the wireless link changes.

For each model, on a Raspberry-Pi-class device and a desktop-class edge (Edgent's published
regressions), over the three networks of the Neurosurgeon paper and a bandwidth sweep: the cut
Neurosurgeon picks for latency and for device energy, against edge-only and device-only.
"""

from __future__ import annotations

import numpy as np

from coinfer import partition, zoo
from coinfer.latency.devices import EDGE_PC, RPI3
from coinfer.latency.energy import COMPUTE_POWER_W, RADIOS, EnergyModel
from coinfer.policies.neurosurgeon import Neurosurgeon
from coinfer.report import ExperimentResult, log_axis, new_figure, save_figure
from coinfer.systems.base import ExperimentContext

# Average uplink throughput of the three networks (Kang et al., ASPLOS 2017, Table 3).
NETWORKS = {"3g": 1.1e6, "lte": 5.85e6, "wifi": 18.88e6}


def run(ctx: ExperimentContext) -> ExperimentResult:
    out_dir, quick = ctx.out_dir, ctx.quick
    models = (
        ["alexnet", "branchy_alexnet", "mlp"]
        if quick
        else [
            "alexnet",
            "vgg16",
            "resnet18",
            "mobilenet_v2",
            "googlenet",
            "tiny_yolov2",
            "mlp",
        ]
    )
    sweep = np.geomspace(20e3, 100e6, 12 if quick else 30)
    rows = []
    fig, (ax_cut, ax_lat) = new_figure(cols=2)
    for name in models:
        part = partition(zoo.create(name), zoo.example_inputs(name))
        for network, bw in NETWORKS.items():
            energy = EnergyModel(COMPUTE_POWER_W["rpi3"], RADIOS[network])
            lat = Neurosurgeon(part, RPI3, EDGE_PC, bw, rtt_s=0.0).plan()
            eng = Neurosurgeon(part, RPI3, EDGE_PC, bw, objective="energy", energy=energy).plan()
            edge_only, device_only = lat.costs[0], lat.costs[-1]
            best_static = min(edge_only.total_s, device_only.total_s)
            rows.append(
                {
                    "model": name,
                    "network": network,
                    "uplink_mbps": bw / 1e6,
                    "cut": lat.cut,
                    "cut_name": part.cuts[lat.cut].name,
                    "num_cuts": part.num_cuts,
                    "latency_s": lat.cost.total_s,
                    "edge_only_s": edge_only.total_s,
                    "device_only_s": device_only.total_s,
                    "speedup_vs_best_static": best_static / lat.cost.total_s,
                    "energy_cut": eng.cut,
                    "energy_j": eng.cost.energy_j,
                }
            )
        cuts, lats = [], []
        for bw in sweep:
            plan = Neurosurgeon(part, RPI3, EDGE_PC, float(bw)).plan()
            cuts.append(plan.cut / part.last)
            lats.append(plan.cost.total_s)
        ax_cut.plot(sweep / 1e6, cuts, marker=".", label=name)
        ax_lat.plot(sweep / 1e6, lats, marker=".", label=name)
    for ax, ylabel in ((ax_cut, "chosen cut / P (1 = device only)"), (ax_lat, "latency (s)")):
        log_axis(ax, "x")
        ax.set_xlabel("uplink bandwidth (Mbit/s)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    log_axis(ax_lat)
    ax_cut.legend(fontsize=7)
    ax_cut.set_title("Neurosurgeon: where to cut (rpi3 + edge-pc)")
    ax_lat.set_title("predicted end-to-end latency")
    plot = save_figure(fig, out_dir / "cut_vs_bandwidth.png")
    notes = [
        "device rpi3, edge edge-pc (Edgent's Table 2 regressions), RTT 0, K = 1",
        "networks: average uplink of 3G 1.1, LTE 5.85, Wi-Fi 18.88 Mbit/s (Neurosurgeon, Table 3)",
        "energy: Pi 3.7 W computing; radio power P = alpha*Mbit/s + beta (Huang et al. 2012)",
    ]
    return ExperimentResult("neurosurgeon", rows, notes, [plot])
