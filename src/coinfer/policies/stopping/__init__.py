"""Online model splitting as optimal stopping (Yan, Bi, Zhang, DESIGN §4).

A chain of N layers, of which the first L̄ are stored on the device. At stage l (l layers done
on the device) the device sees the channel gain h_l and either stops — uploads the D_l bits of
the boundary and lets the edge run layers l+1..N — or computes layer l+1. Stopping at l costs

    Y_l(h) = G_l + k·D_l / R(h),  G_l = Σ_{i≤l} (e_i + w·τ_i) + w·Σ_{i>l} s_i,  k = P_tx + w,

energy plus w times the time. The optimal rule follows from backward induction,
EV_L̄ = E[Y_L̄(h)], EV_l = E[min(Y_l(h), EV_{l+1})]: stop at l iff h ≥ γ_l with
γ_l = (σ²/P)(2^{k·D_l / (B·(EV_{l+1} − G_l))} − 1). Expectations are integrals over the fading
density (adaptive quadrature), not Monte Carlo.

Outage (why and how: ``coinfer.latency.channels``): a block with h < h_min carries nothing, so the
device computes on; at stage L̄ it has nothing left to compute and waits for a usable block,
paying w per second of waiting. Stage N (everything on the device) sends nothing: Y_N = G_N.

The Monte Carlo simulators of these rules live in ``coinfer.sim.stages``.
"""
