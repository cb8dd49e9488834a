#!/usr/bin/env python3
"""PyTorch micro-benchmarks equivalent to the reference implementation's, for `scripts/bench.sh`.

A re-implementation, written from ../shared/docs/method.md (not a copy of the paper's repository), of what
the paper's public PyTorch code does per training iteration and per action, written the way that code is
written (eager PyTorch, one Python call per op, PopSAN-style time-step loop), so that its cost is measured on
this machine in the same run as `spikerl bench` instead of being remembered. HalfCheetah-v4 shapes by default
(obs 17, act 6, max action 1), CPU, batch 256, synthetic minibatches (as `spikerl bench update`: sampling
from a replay buffer is timed as its own phase, not inside the iteration).

Figures (one JSON object each with --json; a table otherwise):
  matmul           achieved sgemm GFLOP/s on the proxy's hidden-layer shape: the machine's FLOP/s as it
                   stands during the run (other load included), to compare iterations against.
  update  proxy    PT-TD3: K proxy steps (each on a fresh minibatch), critic with target smoothing through
                   the proxy, SNN actor and Polyak on the target critics every 2nd iteration.
                   variant "reference": the proxy loss takes the SNN forward inside autograd and
                   backpropagates through the SNN (the reference's known waste; the SNN's gradients are
                   discarded by the actor optimiser's zero_grad, so the numbers are the same);
                   variant "snn_no_grad": the SNN forward under torch.no_grad() (PyTorch done right).
  update  vanilla  SNN-TD3 with a Polyak SNN target actor.
  update  ann      TD3 with a 256-256 ReLU actor, CleanRL style (separate Q modules, one Q optimiser).
  --base sac       the same three algorithms on SAC, written as CleanRL's sac_continuous_action.py: twin
                   critics (one Adam, lr 1e-3) with Polyak targets every iteration, automatic entropy tuning,
                   every 2nd iteration 2 actor updates, each followed by an alpha update. Every actor is a
                   squashed Gaussian whose log-std comes from its own 64-64 MLP on the state (spikerl's SAC).
                   ann: a 256-256 mean network; vanilla: the spiking actor's pre-tanh output as the mean, no
                   target actor; proxy: the TD target's action from a 512-512 ANN mean network plus its own
                   log-std MLP, K imitation steps (mean and log-std MSE to the SNN's) per iteration.
  --base ddpg      the same three on DDPG, written as Fujimoto's OurDDPG.py: one critic, actor and Polyak
                   every iteration, no target smoothing; proxy: the TD target's action from the proxy (K MSE
                   steps to the SNN's action, as PT-TD3), no target actor.
  inference snn / ann   one observation -> one action, as an actor does it: numpy in, numpy out.
                   variant "reference": TD3-style select_action (autograd left on);
                   variant "no_grad": the same under torch.no_grad().
Update figures also carry per-phase times (each phase alone) and dense_gflop_per_iteration, the matrix-product
work of one iteration as PyTorch does it.

Usage: scripts/bench_reference.py [--threads 2] [--seconds 3] [--json] [--neuron lif] [--only update|inference]
                                  [--base td3|sac|ddpg] [--algo proxy|vanilla|ann]
"""
import argparse
import copy
import json
import math
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------------------
# Hyperparameters (method.md, "Training protocol" and "The spiking actor")
GAMMA, TAU, POLICY_NOISE, NOISE_CLIP, POLICY_DELAY = 0.99, 0.005, 0.2, 0.5, 2
ACTOR_LR = CRITIC_LR = 3e-4
HIDDEN = (256, 256)
POP, T_STEPS = 10, 5
V_TH, SURROGATE_WINDOW, V_DECAY = 0.5, 0.5, 0.75
ENC_TH = 0.999
ENC_SIGMA0 = math.sqrt(0.05)
I_DECAY = 0.5
DN_RESET_V, DN_U_JUMP, DN_DU_DV, DN_DU_DU = 0.021, 0.132, -0.172, 0.529
# Proxy per neuron: (hidden widths, learning rate); K = 3 steps per iteration.
PROXY = {"lif": ((512, 512), 1e-3), "clif": ((800, 600), 3e-3), "dn": ((512, 512), 3e-3)}
PROXY_STEPS = 3
# SAC, as CleanRL's sac_continuous_action.py (policy_lr, q_lr, policy_frequency; alpha's Adam takes q_lr).
SAC_POLICY_LR, SAC_Q_LR, SAC_ALPHA_LR, SAC_POLICY_FREQUENCY = 3e-4, 1e-3, 1e-3, 2
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
LOG_STD_HIDDEN = (64, 64)      # spikerl's log-std network, one per SAC actor (ANN, SNN, proxy)
# DDPG, as Fujimoto's OurDDPG.py: Adam 3e-4 for actor and critic (the file's TD3 rates).
DDPG_ACTOR_LR = DDPG_CRITIC_LR = 3e-4
BASES = ("td3", "sac", "ddpg")

ENVS = {"HalfCheetah-v4": (17, 6, 1.0), "Hopper-v4": (11, 3, 1.0), "Walker2d-v4": (17, 6, 1.0),
        "Ant-v4": (27, 8, 1.0), "InvertedDoublePendulum-v4": (11, 1, 1.0), "Pendulum-v1": (3, 1, 2.0)}


# ---------------------------------------------------------------------------------------------------------
# The population-coded spiking actor, PopSAN style: per time step, encoder -> each layer -> neuron update.
class RectSpike(torch.autograd.Function):
    """H(v - V_th) forward; rectangular surrogate dS/dv = 1 where |v - V_th| < window."""

    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return v.gt(V_TH).float()

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad * (torch.abs(v - V_TH) < SURROGATE_WINDOW).float()


class StraightThrough(torch.autograd.Function):
    """The encoder's deterministic spike: (x > 0) forward, identity gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.gt(0.0).float()

    @staticmethod
    def backward(ctx, grad):
        return grad


class PopEncoder(nn.Module):
    def __init__(self, obs_dim):
        super().__init__()
        self.obs_dim = obs_dim
        self.mu = nn.Parameter(torch.linspace(-1.0, 1.0, POP).repeat(obs_dim, 1))   # [obs, pop]
        self.sigma = nn.Parameter(torch.full((obs_dim, POP), ENC_SIGMA0))

    def forward(self, obs):
        s = torch.tanh(obs).unsqueeze(-1)                                            # [B, obs, 1]
        act = torch.exp(-0.5 * (s - self.mu) ** 2 / self.sigma ** 2)
        return act.view(obs.shape[0], self.obs_dim * POP)


class SpikingActor(nn.Module):
    def __init__(self, obs_dim, act_dim, max_action, neuron="lif"):
        super().__init__()
        self.act_dim, self.neuron, self.max_action = act_dim, neuron, max_action
        self.encoder = PopEncoder(obs_dim)
        widths = [obs_dim * POP, *HIDDEN, act_dim * POP]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        # PopSAN's decoder: a grouped 1-D convolution over each action's population.
        self.decoder = nn.Conv1d(act_dim, act_dim, POP, groups=act_dim)

    def neuron_step(self, x, v, s, i, u):
        if self.neuron == "lif":
            v = V_DECAY * v * (1.0 - s) + x
        elif self.neuron == "clif":
            i = I_DECAY * i + x
            v = V_DECAY * v * (1.0 - s) + i
        else:  # dn
            i = I_DECAY * i + x
            v = v * (1.0 - s) + DN_RESET_V * s
            u = u + DN_U_JUMP * s
            dv = v * v - v - u + i
            du = DN_DU_DV * v + DN_DU_DU * u
            v, u = v + dv, u + du
        return v, RectSpike.apply(v), i, u

    def forward(self, obs):
        return self.max_action * torch.tanh(self.pre_tanh(obs))

    def pre_tanh(self, obs):
        """The decoder's output before tanh * max_action (SAC's mean)."""
        b = obs.shape[0]
        pop_act = self.encoder(obs)
        enc_v = torch.zeros_like(pop_act)
        state = [[torch.zeros(b, l.out_features) for _ in range(4)] for l in self.layers]
        out_sum = torch.zeros(b, self.act_dim * POP)
        for _ in range(T_STEPS):
            enc_v = enc_v + pop_act
            x = StraightThrough.apply(enc_v - ENC_TH)
            enc_v = enc_v - x * ENC_TH
            for layer, st in zip(self.layers, state):
                v, s, i, u = self.neuron_step(layer(x), *st)
                st[:] = [v, s, i, u]
                x = s
            out_sum = out_sum + x
        rate = (out_sum / T_STEPS).view(b, self.act_dim, POP)
        return self.decoder(rate).view(b, self.act_dim)


class SpikingMean(SpikingActor):
    """The spiking actor as a SAC mean network: its pre-tanh decoder output."""

    def forward(self, obs):
        return self.pre_tanh(obs)


class MlpActor(nn.Module):
    """The proxy (method.md: Linear-ReLU-Linear-ReLU-Linear, tanh * max_action) and the ANN baseline's actor."""

    def __init__(self, obs_dim, act_dim, max_action, hidden):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(obs_dim, hidden[0]), nn.Linear(*hidden), nn.Linear(hidden[1], act_dim)
        self.max_action = max_action

    def forward(self, s):
        return self.max_action * torch.tanh(self.l3(F.relu(self.l2(F.relu(self.l1(s))))))


class MlpHead(nn.Module):
    """Linear-ReLU-Linear-ReLU-Linear without output activation: SAC's mean and log-std networks."""

    def __init__(self, obs_dim, out_dim, hidden):
        super().__init__()
        self.l1, self.l2 = nn.Linear(obs_dim, hidden[0]), nn.Linear(*hidden)
        self.l3 = nn.Linear(hidden[1], out_dim)

    def forward(self, s):
        return self.l3(F.relu(self.l2(F.relu(self.l1(s)))))


class SquashedGaussian(nn.Module):
    """SAC's actor, CleanRL's Actor with one difference: CleanRL's mean and log-std are two heads on one
    256-256 trunk; spikerl gives every SAC actor (ANN, SNN, proxy) a mean network and a SEPARATE log-std MLP on
    the state (64-64, ReLU), because a spiking mean network has no trunk to share. The reference does the
    same so that both sides time the same networks. log_std, sampling and log-prob as CleanRL writes them."""

    def __init__(self, mean_net, obs_dim, act_dim, max_action):
        super().__init__()
        self.mean_net = mean_net
        self.log_std_net = MlpHead(obs_dim, act_dim, LOG_STD_HIDDEN)
        self.action_scale = max_action          # CleanRL: (high - low) / 2; action_bias is 0 here

    def forward(self, s):
        mean = self.mean_net(s)
        log_std = torch.tanh(self.log_std_net(s))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        return mean, log_std

    def get_action(self, s):
        mean, log_std = self(s)
        std = log_std.exp()
        normal = torch.distributions.Normal(mean, std)
        x_t = normal.rsample()                  # mean + std * N(0, 1)
        y_t = torch.tanh(x_t)
        action = y_t * self.action_scale
        log_prob = normal.log_prob(x_t)
        log_prob -= torch.log(self.action_scale * (1 - y_t.pow(2)) + 1e-6)
        log_prob = log_prob.sum(1, keepdim=True)
        return action, log_prob


class TwinCritic(nn.Module):
    """Fujimoto TD3's critic: both Q networks in one module, one optimiser."""

    def __init__(self, obs_dim, act_dim):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(obs_dim + act_dim, 256), nn.Linear(256, 256), nn.Linear(256, 1)
        self.l4, self.l5, self.l6 = nn.Linear(obs_dim + act_dim, 256), nn.Linear(256, 256), nn.Linear(256, 1)

    def forward(self, s, a):
        sa = torch.cat([s, a], 1)
        q1 = self.l3(F.relu(self.l2(F.relu(self.l1(sa)))))
        q2 = self.l6(F.relu(self.l5(F.relu(self.l4(sa)))))
        return q1, q2

    def Q1(self, s, a):
        sa = torch.cat([s, a], 1)
        return self.l3(F.relu(self.l2(F.relu(self.l1(sa)))))


class QNetwork(nn.Module):
    """CleanRL's Q network (one per critic; SAC's SoftQNetwork and OurDDPG's Critic are the same layers)."""

    def __init__(self, obs_dim, act_dim):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(obs_dim + act_dim, 256), nn.Linear(256, 256), nn.Linear(256, 1)

    def forward(self, s, a):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(torch.cat([s, a], 1))))))


def polyak(target, source):
    # Per parameter, as the reference implementations write it.
    for p, tp in zip(source.parameters(), target.parameters()):
        tp.data.copy_(TAU * p.data + (1 - TAU) * tp.data)


# ---------------------------------------------------------------------------------------------------------
# One training iteration per algorithm. `sample()` returns (s, a, r, s2, not_done) tensors.
class SnnTd3:
    """SNN actor with either the proxy target (PT-TD3) or a Polyak SNN target actor (vanilla SNN-TD3)."""

    def __init__(self, obs_dim, act_dim, max_action, neuron, algo, proxy_snn_grad=True):
        self.algo, self.max_action, self.proxy_snn_grad = algo, max_action, proxy_snn_grad
        self.actor = SpikingActor(obs_dim, act_dim, max_action, neuron)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=ACTOR_LR)
        if algo == "proxy":
            hidden, lr = PROXY[neuron]
            self.proxy = MlpActor(obs_dim, act_dim, max_action, hidden)
            self.proxy_opt = torch.optim.Adam(self.proxy.parameters(), lr=lr)
        else:
            self.actor_target = copy.deepcopy(self.actor)
        self.critic = TwinCritic(obs_dim, act_dim)
        self.critic_target = copy.deepcopy(self.critic)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=CRITIC_LR)
        self.it = 0

    def proxy_step(self, state):
        if self.proxy_snn_grad:
            snn_action = self.actor(state)           # inside autograd: the backward runs through the SNN
        else:
            with torch.no_grad():
                snn_action = self.actor(state)
        loss = F.mse_loss(self.proxy(state), snn_action)
        self.proxy_opt.zero_grad()
        loss.backward()
        self.proxy_opt.step()

    def critic_step(self, s, a, r, s2, not_done):
        with torch.no_grad():
            noise = (torch.randn_like(a) * POLICY_NOISE).clamp(-NOISE_CLIP, NOISE_CLIP) * self.max_action
            target_policy = self.proxy if self.algo == "proxy" else self.actor_target
            a2 = (target_policy(s2) + noise).clamp(-self.max_action, self.max_action)
            tq1, tq2 = self.critic_target(s2, a2)
            target_q = r + not_done * GAMMA * torch.min(tq1, tq2)
        q1, q2 = self.critic(s, a)
        loss = F.mse_loss(q1, target_q) + F.mse_loss(q2, target_q)
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()

    def actor_step(self, s):
        loss = -self.critic.Q1(s, self.actor(s)).mean()
        self.actor_opt.zero_grad()
        loss.backward()
        self.actor_opt.step()
        polyak(self.critic_target, self.critic)
        if self.algo != "proxy":
            polyak(self.actor_target, self.actor)

    def train(self, sample):
        self.it += 1
        if self.algo == "proxy":
            for _ in range(PROXY_STEPS):
                self.proxy_step(sample()[0])
        s, a, r, s2, nd = sample()
        self.critic_step(s, a, r, s2, nd)
        if self.it % POLICY_DELAY == 0:
            self.actor_step(s)

    def act_no_grad(self, s):
        with torch.no_grad():
            return self.actor(s)


class CleanRlTd3:
    """TD3 with a 256-256 ReLU actor, written as CleanRL's td3_continuous_action writes it."""

    def __init__(self, obs_dim, act_dim, max_action):
        self.max_action = max_action
        self.actor = MlpActor(obs_dim, act_dim, max_action, HIDDEN)
        self.target_actor = copy.deepcopy(self.actor)
        self.qf1, self.qf2 = QNetwork(obs_dim, act_dim), QNetwork(obs_dim, act_dim)
        self.qf1_target, self.qf2_target = copy.deepcopy(self.qf1), copy.deepcopy(self.qf2)
        self.q_opt = torch.optim.Adam(list(self.qf1.parameters()) + list(self.qf2.parameters()), lr=CRITIC_LR)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=ACTOR_LR)
        self.it = 0

    def train(self, sample):
        self.it += 1
        s, a, r, s2, nd = sample()
        with torch.no_grad():
            noise = (torch.randn_like(a) * POLICY_NOISE).clamp(-NOISE_CLIP, NOISE_CLIP) * self.max_action
            a2 = (self.target_actor(s2) + noise).clamp(-self.max_action, self.max_action)
            min_q = torch.min(self.qf1_target(s2, a2), self.qf2_target(s2, a2))
            next_q = r.flatten() + nd.flatten() * GAMMA * min_q.view(-1)
        q1 = self.qf1(s, a).view(-1)
        q2 = self.qf2(s, a).view(-1)
        loss = F.mse_loss(q1, next_q) + F.mse_loss(q2, next_q)
        self.q_opt.zero_grad()
        loss.backward()
        self.q_opt.step()
        if self.it % POLICY_DELAY == 0:
            actor_loss = -self.qf1(s, self.actor(s)).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            polyak(self.target_actor, self.actor)
            polyak(self.qf1_target, self.qf1)
            polyak(self.qf2_target, self.qf2)


class CleanRlSac:
    """SAC as CleanRL's sac_continuous_action.py writes its training step, for the three actors: ann (256-256
    mean network), vanilla (the spiking actor's pre-tanh output as the mean; SAC has no target actor, so the
    TD target's next action is sampled from the online SNN) and proxy (the next action and its log-prob from
    the proxy, a 512-512 ANN mean network with its own log-std MLP, trained by imitation before the critic
    step as PT-TD3's proxy). Every mean network has its own log-std MLP (SquashedGaussian)."""

    def __init__(self, obs_dim, act_dim, max_action, neuron, algo, proxy_snn_grad=True):
        self.algo, self.proxy_snn_grad = algo, proxy_snn_grad
        if algo == "ann":
            mean_net = MlpHead(obs_dim, act_dim, HIDDEN)
        else:
            mean_net = SpikingMean(obs_dim, act_dim, max_action, neuron)
        self.actor = SquashedGaussian(mean_net, obs_dim, act_dim, max_action)
        self.actor_opt = torch.optim.Adam(list(self.actor.parameters()), lr=SAC_POLICY_LR)
        if algo == "proxy":
            hidden, lr = PROXY[neuron]
            self.proxy = SquashedGaussian(MlpHead(obs_dim, act_dim, hidden), obs_dim, act_dim, max_action)
            self.proxy_opt = torch.optim.Adam(self.proxy.parameters(), lr=lr)   # mean and log-std nets
        self.qf1, self.qf2 = QNetwork(obs_dim, act_dim), QNetwork(obs_dim, act_dim)
        self.qf1_target, self.qf2_target = copy.deepcopy(self.qf1), copy.deepcopy(self.qf2)
        self.q_opt = torch.optim.Adam(list(self.qf1.parameters()) + list(self.qf2.parameters()), lr=SAC_Q_LR)
        # Automatic entropy tuning (CleanRL's autotune): alpha starts at 1.
        self.target_entropy = -float(act_dim)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.alpha = self.log_alpha.exp().item()
        self.a_opt = torch.optim.Adam([self.log_alpha], lr=SAC_ALPHA_LR)
        self.it = 0

    def proxy_step(self, state):
        """Imitation: the proxy's mean and log-std towards the SNN actor's (held constant)."""
        if self.proxy_snn_grad:
            snn_mean, snn_log_std = self.actor(state)     # recorded by autograd; .detach() below cuts it
        else:
            with torch.no_grad():
                snn_mean, snn_log_std = self.actor(state)
        proxy_mean, proxy_log_std = self.proxy(state)
        loss = F.mse_loss(proxy_mean, snn_mean.detach()) + F.mse_loss(proxy_log_std, snn_log_std.detach())
        self.proxy_opt.zero_grad()
        loss.backward()
        self.proxy_opt.step()

    def critic_step(self, s, a, r, s2, not_done):
        """The critic update and the Polyak update of both target critics (CleanRL does the latter after the
        actor block; the actor block reads only the online critics, so the order changes nothing)."""
        with torch.no_grad():
            policy = self.proxy if self.algo == "proxy" else self.actor
            next_state_actions, next_state_log_pi = policy.get_action(s2)
            qf1_next_target = self.qf1_target(s2, next_state_actions)
            qf2_next_target = self.qf2_target(s2, next_state_actions)
            min_qf_next_target = torch.min(qf1_next_target, qf2_next_target) - self.alpha * next_state_log_pi
            next_q_value = r.flatten() + not_done.flatten() * GAMMA * min_qf_next_target.view(-1)
        qf1_a_values = self.qf1(s, a).view(-1)
        qf2_a_values = self.qf2(s, a).view(-1)
        qf_loss = F.mse_loss(qf1_a_values, next_q_value) + F.mse_loss(qf2_a_values, next_q_value)
        self.q_opt.zero_grad()
        qf_loss.backward()
        self.q_opt.step()
        polyak(self.qf1_target, self.qf1)
        polyak(self.qf2_target, self.qf2)

    def actor_step(self, s):
        """policy_frequency actor updates on the same observations, each followed by an alpha update."""
        for _ in range(SAC_POLICY_FREQUENCY):
            pi, log_pi = self.actor.get_action(s)
            min_qf_pi = torch.min(self.qf1(s, pi), self.qf2(s, pi))
            actor_loss = ((self.alpha * log_pi) - min_qf_pi).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            with torch.no_grad():
                _, log_pi = self.actor.get_action(s)
            alpha_loss = (-self.log_alpha.exp() * (log_pi + self.target_entropy)).mean()
            self.a_opt.zero_grad()
            alpha_loss.backward()
            self.a_opt.step()
            self.alpha = self.log_alpha.exp().item()

    def train(self, sample):
        self.it += 1
        if self.algo == "proxy":
            for _ in range(PROXY_STEPS):
                self.proxy_step(sample()[0])
        s, a, r, s2, nd = sample()
        self.critic_step(s, a, r, s2, nd)
        if self.it % SAC_POLICY_FREQUENCY == 0:
            self.actor_step(s)

    def act_no_grad(self, s):
        with torch.no_grad():
            return self.actor.mean_net(s)


class OurDdpg:
    """DDPG as Fujimoto's OurDDPG.py writes its training step (one critic, no target smoothing, actor and
    Polyak every iteration; the TD target is computed with autograd on and .detach()ed, as there), for the
    256-256 ANN actor, the spiking actor with a Polyak SNN target actor (vanilla), or the spiking actor with
    the proxy as the TD target's policy and no target actor (proxy, trained as PT-TD3's)."""

    def __init__(self, obs_dim, act_dim, max_action, neuron, algo, proxy_snn_grad=True):
        self.algo, self.proxy_snn_grad = algo, proxy_snn_grad
        if algo == "ann":
            self.actor = MlpActor(obs_dim, act_dim, max_action, HIDDEN)
        else:
            self.actor = SpikingActor(obs_dim, act_dim, max_action, neuron)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=DDPG_ACTOR_LR)
        if algo == "proxy":
            hidden, lr = PROXY[neuron]
            self.proxy = MlpActor(obs_dim, act_dim, max_action, hidden)
            self.proxy_opt = torch.optim.Adam(self.proxy.parameters(), lr=lr)
        else:
            self.actor_target = copy.deepcopy(self.actor)
        self.critic = QNetwork(obs_dim, act_dim)
        self.critic_target = copy.deepcopy(self.critic)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=DDPG_CRITIC_LR)

    proxy_step = SnnTd3.proxy_step      # the same imitation step as PT-TD3's

    def critic_step(self, s, a, r, s2, not_done):
        target_policy = self.proxy if self.algo == "proxy" else self.actor_target
        target_q = self.critic_target(s2, target_policy(s2))
        target_q = r + (not_done * GAMMA * target_q).detach()
        current_q = self.critic(s, a)
        critic_loss = F.mse_loss(current_q, target_q)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

    def actor_step(self, s):
        actor_loss = -self.critic(s, self.actor(s)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        polyak(self.critic_target, self.critic)
        if self.algo != "proxy":
            polyak(self.actor_target, self.actor)

    def train(self, sample):
        if self.algo == "proxy":
            for _ in range(PROXY_STEPS):
                self.proxy_step(sample()[0])
        s, a, r, s2, nd = sample()
        self.critic_step(s, a, r, s2, nd)
        self.actor_step(s)

    def act_no_grad(self, s):
        with torch.no_grad():
            return self.actor(s)


# ---------------------------------------------------------------------------------------------------------
class ReplayBuffer:
    """Fujimoto TD3's buffer: numpy arrays, uniform indices, torch.FloatTensor per field."""

    def __init__(self, obs_dim, act_dim, size, rng):
        self.size = size
        self.state = rng.uniform(-2, 2, (size, obs_dim))
        self.action = rng.uniform(-1, 1, (size, act_dim))
        self.next_state = rng.uniform(-2, 2, (size, obs_dim))
        self.reward = rng.uniform(-1, 1, (size, 1))
        self.not_done = np.ones((size, 1))

    def sample(self, batch):
        ind = np.random.randint(0, self.size, size=batch)
        return (torch.FloatTensor(self.state[ind]), torch.FloatTensor(self.action[ind]),
                torch.FloatTensor(self.reward[ind]), torch.FloatTensor(self.next_state[ind]),
                torch.FloatTensor(self.not_done[ind]))


def minibatch_pool(obs_dim, act_dim, batch, n=8):
    g = torch.Generator().manual_seed(0)
    u = lambda *shape, scale: (torch.rand(*shape, generator=g) * 2 - 1) * scale
    return [(u(batch, obs_dim, scale=2.0), u(batch, act_dim, scale=1.0), u(batch, 1, scale=1.0),
             u(batch, obs_dim, scale=2.0), torch.ones(batch, 1)) for _ in range(n)]


def time_per_call(fn, seconds, min_reps=4, warmup=3):
    """Seconds per call of fn, over at least `seconds` (after a warm-up)."""
    for _ in range(warmup):
        fn()
    reps, started = 0, time.perf_counter()
    while True:
        fn()
        reps += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and reps >= min_reps:
            return elapsed / reps, reps


def mlp_macs(widths):
    return sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def dense_gflop_per_iteration(algo, neuron, env, batch, variant, base="td3"):
    """Matrix-product work of one iteration as PyTorch does it (dense; forward 2*MACs per sample, forward plus
    backward counted as 3x forward). Elementwise ops are not counted: they are not FLOP-bound."""
    obs_dim, act_dim, _ = ENVS[env]
    fwd = lambda macs: 2.0 * batch * macs
    snn = T_STEPS * mlp_macs([obs_dim * POP, *HIDDEN, act_dim * POP]) + act_dim * POP
    critic1 = mlp_macs([obs_dim + act_dim, 256, 256, 1])
    if algo == "ann":
        target_policy = actor = mlp_macs([obs_dim, *HIDDEN, act_dim])
    else:
        actor = snn
        target_policy = mlp_macs([obs_dim, *PROXY[neuron][0], act_dim]) if algo == "proxy" else snn
    if base == "sac":
        log_std = mlp_macs([obs_dim, *LOG_STD_HIDDEN, act_dim])
        actor, target_policy = actor + log_std, target_policy + log_std
        total = fwd(target_policy) + fwd(2 * critic1) + 3 * fwd(2 * critic1)    # critic step
        # every policy_frequency-th iteration, policy_frequency actor updates (each: actor and both critics
        # forward and backward, then the actor again without grad for alpha): one per iteration on average
        total += 3 * fwd(actor) + 3 * fwd(2 * critic1) + fwd(actor)
        if algo == "proxy":   # the SNN's outputs are detached in both variants: its forward only
            total += PROXY_STEPS * (3 * fwd(target_policy) + fwd(snn + log_std))
        return total / 1e9
    if base == "ddpg":
        total = fwd(target_policy) + fwd(critic1) + 3 * fwd(critic1)             # critic step
        total += 3 * fwd(actor) + 3 * fwd(critic1)                                # actor, every iteration
    else:
        total = fwd(target_policy) + fwd(2 * critic1) + 3 * fwd(2 * critic1)    # critic step
        total += (3 * fwd(actor) + 3 * fwd(critic1)) / POLICY_DELAY              # delayed actor step
    if algo == "proxy":
        snn_cost = 3 * fwd(snn) if variant == "reference" else fwd(snn)
        total += PROXY_STEPS * (3 * fwd(target_policy) + snn_cost)
    return total / 1e9


def bench_matmul(batch, seconds):
    """Achieved sgemm rate on the proxy's hidden layer shape ([B, 512] x [512, 512])."""
    a, w = torch.randn(batch, 512), torch.randn(512, 512)
    per = time_per_call(lambda: torch.mm(a, w), seconds, min_reps=20, warmup=10)[0]
    return {"figure": "matmul", "impl": "pytorch", "shape": [batch, 512, 512],
            "gflops": 2.0 * batch * 512 * 512 / per / 1e9}


def bench_update(algo, neuron, env, batch, seconds, variant, base="td3"):
    obs_dim, act_dim, max_action = ENVS[env]
    torch.manual_seed(0)
    np.random.seed(0)
    if base == "sac":
        agent = CleanRlSac(obs_dim, act_dim, max_action, neuron, algo, proxy_snn_grad=(variant == "reference"))
    elif base == "ddpg":
        agent = OurDdpg(obs_dim, act_dim, max_action, neuron, algo, proxy_snn_grad=(variant == "reference"))
    elif algo == "ann":
        agent = CleanRlTd3(obs_dim, act_dim, max_action)
    else:
        agent = SnnTd3(obs_dim, act_dim, max_action, neuron, algo, proxy_snn_grad=(variant == "reference"))
    pool = minibatch_pool(obs_dim, act_dim, batch)
    k = [0]

    def sample():
        k[0] += 1
        return pool[k[0] % len(pool)]

    per_it, reps = time_per_call(lambda: agent.train(sample), seconds, min_reps=2 * POLICY_DELAY)
    fig = {"figure": "update", "impl": "pytorch", "env": env, "base": base, "algo": algo,
           "neuron": neuron if algo != "ann" else "-", "variant": variant, "batch": batch, "iterations": reps,
           "ms_per_iteration": per_it * 1e3, "iterations_per_second": 1.0 / per_it,
           "dense_gflop_per_iteration": dense_gflop_per_iteration(algo, neuron, env, batch, variant, base)}
    # Phases, each alone over a short time (a fifth of the iteration's budget each).
    ph = max(seconds / 5, 0.3)
    s, a, r, s2, nd = pool[0]
    if algo != "ann" or base != "td3":     # TD3's ANN (CleanRlTd3) has no separate phases
        if algo != "ann":
            fig["ms_snn_forward_no_grad"] = time_per_call(lambda: agent.act_no_grad(s), ph)[0] * 1e3
        fig["ms_critic_step"] = time_per_call(lambda: agent.critic_step(s, a, r, s2, nd), ph)[0] * 1e3
        fig["ms_actor_step"] = time_per_call(lambda: agent.actor_step(s), ph)[0] * 1e3
        if algo == "proxy":
            fig["ms_proxy_step"] = time_per_call(lambda: agent.proxy_step(s), ph)[0] * 1e3
    buf = ReplayBuffer(obs_dim, act_dim, 200_000, np.random.default_rng(0))
    fig["ms_sample_to_tensors"] = time_per_call(lambda: buf.sample(batch), ph)[0] * 1e3
    return fig


def bench_inference(network, neuron, env, seconds, variant):
    obs_dim, act_dim, max_action = ENVS[env]
    torch.manual_seed(0)
    if network == "ann":
        actor = MlpActor(obs_dim, act_dim, max_action, HIDDEN)
    else:
        actor = SpikingActor(obs_dim, act_dim, max_action, neuron)
    rng = np.random.default_rng(1)
    observations = rng.uniform(-1, 1, (16, obs_dim))
    k = [0]

    def select_action():
        k[0] += 1
        state = torch.FloatTensor(observations[k[0] % 16].reshape(1, -1))
        return actor(state).cpu().data.numpy().flatten()

    def select_action_no_grad():
        with torch.no_grad():
            return select_action()

    fn = select_action if variant == "reference" else select_action_no_grad
    per, reps = time_per_call(fn, seconds, min_reps=20, warmup=20)
    return {"figure": "inference", "impl": "pytorch", "env": env,
            "network": "ann" if network == "ann" else f"snn-{neuron}", "variant": variant, "batch": 1,
            "actions": reps, "us_per_action": per * 1e6, "actions_per_second": 1.0 / per}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="HalfCheetah-v4", choices=sorted(ENVS))
    ap.add_argument("--neuron", default="lif", choices=sorted(PROXY))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per iteration figure")
    ap.add_argument("--only", choices=["matmul", "update", "inference"], help="one kind of figure only")
    ap.add_argument("--algo", choices=["proxy", "vanilla", "ann"], help="update figures of one algorithm only")
    ap.add_argument("--base", default="td3", choices=BASES,
                    help="the RL algorithm of the update figures (default td3)")
    ap.add_argument("--json", action="store_true", help="one JSON object per figure, one per line")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
            "cpu": platform.processor() or platform.machine()}
    if not args.json:
        print(f"reference-equivalent PyTorch benchmarks: torch {meta['torch']}, {meta['threads']} threads, "
              f"{args.env}, batch {args.batch}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    jobs = [(bench_matmul, (args.batch, 0.5))] if args.only in (None, "matmul") else []
    if args.only in (None, "update"):
        updates = [("proxy", "reference"), ("proxy", "snn_no_grad"), ("vanilla", "reference"), ("ann", "reference")]
        jobs += [(bench_update, (algo, args.neuron, args.env, args.batch, args.seconds, variant, args.base))
                 for algo, variant in updates if args.algo in (None, algo)]
    if args.only in (None, "inference"):
        inf_s = max(args.seconds / 2, 0.5)
        jobs += [(bench_inference, (net, args.neuron, args.env, inf_s, v))
                 for net in ("snn", "ann") for v in ("reference", "no_grad")]
    for fn, a in jobs:
        fig = fn(*a)
        fig.update(meta, loadavg_1m=round(os.getloadavg()[0], 2))
        if args.json:
            print(json.dumps(fig), flush=True)
        elif fig["figure"] == "matmul":
            print(f"  sgemm {fig['shape']}: {fig['gflops']:.1f} GFLOP/s", flush=True)
        elif fig["figure"] == "update":
            phases = ", ".join(f"{k[3:]} {v:.2f} ms" for k, v in fig.items() if k.startswith("ms_") and k != "ms_per_iteration")
            base = "" if fig["base"] == "td3" else f"{fig['base']} "
            print(f"  update {base}{fig['algo']:<7} {fig['neuron']:<4} {fig['variant']:<11} "
                  f"{fig['ms_per_iteration']:8.2f} ms/iteration ({fig['iterations_per_second']:6.1f} it/s, "
                  f"{fig['dense_gflop_per_iteration']:.2f} GFLOP)   [{phases}]",
                  flush=True)
        else:
            print(f"  inference {fig['network']:<8} {fig['variant']:<11} {fig['us_per_action']:8.1f} us/action "
                  f"({fig['actions_per_second']:8.0f} actions/s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
