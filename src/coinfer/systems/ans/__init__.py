"""Autodidactic Neurosurgeon (Zhang, Chen, Xu, WWW 2021): learning the cut online, frame by
frame, with the contextual bandit μLinUCB — key frames by SSIM, forced sampling, no offline
profiling of the edge. Its worlds are the paper's scenarios (``scenarios``); ``simulate`` runs
every policy on one of them, ``experiment`` the paper's table, ``demo`` the learner live."""

from coinfer.systems.base import System

SYSTEM = System(
    "ans",
    "Zhang, Chen, Xu, Autodidactic Neurosurgeon, WWW 2021",
    (
        "linucb",
        "mulinucb",
        "mulinucb-scaled",
        "mulinucb-discounted",
        "mulinucb-link",
        "forced-oracle",
    ),
    "coinfer.systems.ans.experiment:run",
    demo_ref="coinfer.systems.ans.demo:SPEC",
)
