"""Every policy's factory, registered once (``coinfer.policies.registry``): how each is built
from what a device knows. One tuning per name, whatever the world."""

from __future__ import annotations

from functools import partial

from coinfer.errors import BadValueError
from coinfer.latency.predict import CutCostModel
from coinfer.policies.bandits import LinUCB, TunedMuLinUCB
from coinfer.policies.edgent import EdgentDynamic, EdgentPlanner
from coinfer.policies.fedlinucb import Federation, Traffic, build_fleet, learner, member
from coinfer.policies.mulinucb import MuLinUCB
from coinfer.policies.neurosurgeon import Neurosurgeon
from coinfer.policies.registry import Knowledge, register
from coinfer.policies.static import FixedCut, ForcedOracle, Oracle
from coinfer.policies.stopping.policy import ThresholdPolicy
from coinfer.policies.stopping.rules import best_fixed_rule, myopic_rule, optimal_rule, osla_rule
from coinfer.policies.types import Action, Context, Policy

NEEDS_TRUTH = "it needs every cut's true delay for the frame to come, which only a simulator has"
FLEET_ONLY = "this policy's devices cooperate: it needs a fleet (coinfer fleet)"


@register(
    "device-only",
    summary="every layer on the device (the last cut)",
    worlds=("sim", "live", "fleet"),
)
def _device_only(k: Knowledge) -> Policy:
    return FixedCut(k.part.last)


@register(
    "edge-only",
    summary="everything on the edge: the raw input is sent (cut 0)",
    worlds=("sim", "live", "fleet"),
)
def _edge_only(k: Knowledge) -> Policy:
    return FixedCut(0)


@register(
    "fixed-K",
    summary="always cut K (fixed-5: the device runs up to cut 5)",
    worlds=("sim", "live", "fleet"),
)
def _fixed(k: Knowledge) -> Policy:
    raise BadValueError("fixed-K: give the cut, e.g. fixed-5")


@register(
    "oracle",
    summary="each frame's truly best cut (the reference of regret)",
    worlds=("sim", "fleet"),
    why_not={"live": f"the Oracle cannot run live: {NEEDS_TRUTH}"},
)
def _oracle(k: Knowledge) -> Policy:
    return Oracle(k.need_truth("the Oracle"))


@register(
    "best-fixed",
    summary="the cut with the least true delay over the whole run (hindsight)",
    worlds=("sim",),
    why_not={
        "live": "best-fixed is chosen in hindsight from the Oracle's simulated run",
        "fleet": "not computed per fleet",
    },
)
def _best_fixed(k: Knowledge) -> Policy:
    raise BadValueError("best-fixed is chosen from the Oracle's run: coinfer simulate builds it")


@register(
    "forced-oracle",
    summary="the Oracle held to μLinUCB's forced-sampling schedule",
    worlds=("sim",),
    why_not={"live": f"it cannot run live: {NEEDS_TRUTH}", "fleet": "a single-device reference"},
)
def _forced_oracle(k: Knowledge) -> Policy:
    return ForcedOracle(k.need_truth("forced-oracle"))


@register("neurosurgeon", summary="Neurosurgeon: argmin of predicted latency, bandwidth EWMA")
def _neurosurgeon(k: Knowledge) -> Policy:
    return Neurosurgeon(k.part, k.device, k.edge, k.link_bps, rtt_s=k.rtt_s)


@register("neurosurgeon-static", summary="Neurosurgeon planned once for the link at the start")
def _neurosurgeon_static(k: Knowledge) -> Policy:
    return Neurosurgeon(k.part, k.device, k.edge, k.link_bps, rtt_s=k.rtt_s, adaptive=False)


@register("linucb", summary="LinUCB on the 7 ANS features (α = 1)")
def _linucb(k: Knowledge) -> Policy:
    return LinUCB(k.part.cuts, k.front_s, delay_unit_s=k.delay_unit_s)


@register(
    "mulinucb",
    summary="μLinUCB as the ANS authors built it: raw features, a random "
    "diagonal prior, offload time in seconds, forced sampling",
)
def _mulinucb(k: Knowledge) -> Policy:
    return MuLinUCB(k.part.cuts, k.front_s, seed=k.seed)


@register(
    "mulinucb-scaled",
    summary="μLinUCB's rules on scaled features, a delay unit, a λI "
    "prior and the reply averaged apart",
)
def _mulinucb_scaled(k: Knowledge) -> Policy:
    return TunedMuLinUCB(k.part.cuts, k.front_s, delay_unit_s=k.delay_unit_s)


@register(
    "mulinucb-discounted", summary="mulinucb-scaled with discounted statistics (γ, --discount)"
)
def _mulinucb_discounted(k: Knowledge) -> Policy:
    return TunedMuLinUCB(k.part.cuts, k.front_s, discount=k.discount, delay_unit_s=k.delay_unit_s)


@register("mulinucb-link", summary="mulinucb-discounted plus the measured link rate as a feature")
def _mulinucb_link(k: Knowledge) -> Policy:
    return TunedMuLinUCB(
        k.part.cuts, k.front_s, discount=k.discount, delay_unit_s=k.delay_unit_s, link_feature=True
    )


def _edgent_planner(k: Knowledge, name: str) -> tuple[EdgentPlanner, float]:
    if not k.exits:
        raise BadValueError(
            f"{name} chooses an exit: it needs a multi-exit model (branchy_alexnet)"
        )
    if k.latency_req_s is None or not k.latency_req_s > 0:
        raise BadValueError(f"{name} needs a positive latency requirement (--latency-req 100ms)")
    return EdgentPlanner(k.exits, k.device, k.edge, k.rtt_s), k.latency_req_s


@register(
    "edgent",
    kind="exit+cut",
    summary="Edgent static: the most accurate exit (and its best cut) meeting the deadline "
    "at the link's rate at the start",
)
def _edgent(k: Knowledge) -> Policy:
    planner, req = _edgent_planner(k, "edgent")
    choice = planner.plan(k.link_bps, req)
    return FixedCut(choice.cut, choice.exit)


@register(
    "edgent-dynamic",
    kind="exit+cut",
    watches_link=True,
    summary="Edgent dynamic: bandwidth states, a configuration map, CUSUM change detection "
    "on the measured throughput",
)
def _edgent_dynamic(k: Knowledge) -> Policy:
    planner, req = _edgent_planner(k, "edgent-dynamic")
    history = list(k.link_history_bps) or [k.link_bps]
    return EdgentDynamic(planner, history, req)


@register(
    "edgent-device-only",
    kind="exit+cut",
    summary="the most accurate exit whose whole path on the device meets the deadline "
    "(the shallowest if none does)",
)
def _edgent_device_only(k: Knowledge) -> Policy:
    planner, req = _edgent_planner(k, "edgent-device-only")
    for path in sorted(planner.exits, key=lambda p: (p.accuracy, p.exit), reverse=True):
        if CutCostModel(path.part, k.device, k.edge).device_s[-1] <= req:
            return FixedCut(path.part.last, path.exit)
    first = min(planner.exits, key=lambda p: p.exit)
    return FixedCut(first.part.last, first.exit)


class _EdgentOracle:
    """Plans every frame with the bandwidth the frame will see (the monitor's truth)."""

    def __init__(self, planner: EdgentPlanner, req: float) -> None:
        self.planner, self.req = planner, req

    def select(self, ctx: Context) -> Action:
        bps = ctx.extra.get("bandwidth_bps")
        if bps is None:
            raise BadValueError("edgent-oracle needs the true bandwidth of every frame")
        choice = self.planner.plan(bps, self.req)
        return Action(choice.cut, choice.exit)

    def update(self, action: Action, fb: object) -> None:
        """Nothing to learn: it knows."""


@register(
    "edgent-oracle",
    kind="exit+cut",
    worlds=("sim",),
    summary="Edgent planned every frame with the true bandwidth (the reference)",
    why_not={
        "live": "it plans with the bandwidth the frame will see, which a live device cannot know"
    },
)
def _edgent_oracle(k: Knowledge) -> Policy:
    planner, req = _edgent_planner(k, "edgent-oracle")
    return _EdgentOracle(planner, req)


def _stages(k: Knowledge, name: str):  # type: ignore[no-untyped-def]
    if k.stages is None:
        raise BadValueError(
            f"{name} decides stage by stage: it needs a fading channel "
            "(--channel rayleigh or rician)"
        )
    return k.stages


@register(
    "stopping",
    kind="stage",
    summary="optimal stopping (Yan-Bi-Zhang): offload at stage l iff the gain ≥ γ_l "
    "(backward induction)",
)
def _stopping(k: Knowledge) -> Policy:
    p = _stages(k, "stopping")
    return ThresholdPolicy(optimal_rule(p.costs, p.fading))


@register("osla", kind="stage", summary="one-stage look-ahead thresholds (closed form)")
def _osla(k: Knowledge) -> Policy:
    p = _stages(k, "osla")
    return ThresholdPolicy(osla_rule(p.costs, p.fading))


@register(
    "myopic",
    kind="stage",
    summary="stop iff now is no dearer than the best later stage at the mean channel",
)
def _myopic(k: Knowledge) -> Policy:
    p = _stages(k, "myopic")
    return ThresholdPolicy(myopic_rule(p.costs, p.fading, p.fading.mean_gain))


@register(
    "fixed-split",
    kind="stage",
    summary="the split best for the mean channel, whatever the channel does",
)
def _fixed_split(k: Knowledge) -> Policy:
    p = _stages(k, "fixed-split")
    return ThresholdPolicy(best_fixed_rule(p.costs, p.fading, p.fading.mean_gain))


def _federated_member(name: str, k: Knowledge) -> Policy:
    """One live device of a federated policy: its group lives on the edge server."""
    fed = k.federation or Federation()
    if name == "noncoop":
        return learner(k, fed)
    if k.group is None:
        raise BadValueError(
            f"{name} shares statistics through the edge: give --group NAME (and "
            "serve with coinfer serve --federation)"
        )
    return member(name, k, k.group, Traffic(), fed, k.experience)


for _name, _summary in (
    ("noncoop", "μLinUCB per device, alone (CANS's non-cooperative baseline)"),
    ("fedlinucb", "FedLinUCB: every device in one pool, event-triggered sync"),
    ("fedlinucb-d", "FedLinUCB-D: pooled by device type"),
    ("fedlinucb-dw", "FedLinUCB-DW (CANS): by type, warm-started from offline experience"),
    ("fedlinucb-dw-periodic", "FedLinUCB-DW syncing every --sync-period frames"),
    ("fedlinucb-w", "FedLinUCB in one pool, warm-started"),
):
    register(
        _name,
        summary=_summary,
        worlds=("fleet", "live"),
        fleet=partial(build_fleet, _name),
        why_not={"sim": FLEET_ONLY},
    )(partial(_federated_member, _name))
