"""The peephole LSTM layer as one autograd node: a forward time loop and backpropagation through time by hand.

PyTorch's fused LSTM has no peepholes, and the cell's step loop under autograd records about twenty nodes per
step, each with its own backward and allocations (1.1-1.3x nn.LSTM's time on one CPU thread; this node takes
0.90-0.95x, benchmarks/results/cells.md). It runs the same equations (`LSTMCell`, gate order i, f, g, o):

    i = σ(a_i + p_i ⊙ c_{t-1})   f = σ(a_f + p_f ⊙ c_{t-1})   g = tanh(a_g)   a = W_ih x_t + b + W_hh h_{t-1}
    c_t = f ⊙ c_{t-1} + i ⊙ g    o = σ(a_o + p_o ⊙ c_t)       h_t = o ⊙ tanh(c_t)

and keeps in the time loop only what must be there: one product with W_hh per step, forward and backward, and
the gate arithmetic in place. Everything that can wait for the whole sequence is done once, as large products
that run near the machine's matrix-product speed: the input projection for all steps, and in backward the
gradients of W_ih, W_hh, b and x from the gate gradients of all steps (how cuDNN and oneDNN lay out the LSTM).

Backward, step t from T down to 1, with dh, dc the gradients reaching h_t, c_t from later steps and the output:
    d_o = dh ⊙ tanh(c_t) ⊙ o(1 − o)                  dc += dh ⊙ o ⊙ (1 − tanh²(c_t)) + p_o ⊙ d_o
    d_g = dc ⊙ i ⊙ (1 − g²)    d_i = dc ⊙ g ⊙ i(1 − i)    d_f = dc ⊙ c_{t-1} ⊙ f(1 − f)
    dc_{t-1} = dc ⊙ f + p_i ⊙ d_i + p_f ⊙ d_f         dh_{t-1} = output gradient + [d_i d_f d_g d_o] W_hh
The node is differentiable once (Hessian-free runs the cell's step loop instead, `Cell.fused_op = False`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

# σ'(a) and tanh'(a) from the activations, in one pass each, written into a given tensor.
_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input  # grad ⊙ y(1 − y)
_tanh_backward = torch.ops.aten.tanh_backward.grad_input  # grad ⊙ (1 − y²)


def peephole_lstm(
    x: Tensor, weight_ih: Tensor, bias: Tensor, weight_hh: Tensor, peephole: Tensor, h0: Tensor, c0: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """x (N, T, D), weights as `LSTMCell` (bias = b_ih + b_hh), peephole (3, H) = (p_i, p_f, p_o), h0 and c0
    (N, H) -> outputs (N, T, H), h_T, c_T. Computes in the tensors' own dtype with autocast off: `LSTMCell`
    hands it float32 at least (`at_least_float32`), so that mixed precision keeps no cell state in bf16."""
    with torch.autocast(x.device.type, enabled=False):
        return _PeepholeLSTM.apply(x, weight_ih, bias, weight_hh, peephole, h0, c0)


def _forward(
    x: Tensor, weight_ih: Tensor, bias: Tensor, weight_hh: Tensor, peephole: Tensor, h0: Tensor, c0: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The forward time loop on time-major x (T·N, D): gate activations (T, N, 4, H), cells and outputs (T, N, H).

    Time-major, each step's slice is one contiguous block, and in backward Σ_t d_t^T h_{t-1} is one product of
    the gate gradients with the outputs N rows earlier (batch-first measured the same speed)."""
    N, H = h0.shape
    T = x.shape[0] // N
    # The input's share of every gate for all steps in one product; each step adds W_hh h_{t-1} in place, then
    # the gates' activations overwrite their pre-activations (backward needs only the activations).
    gates = torch.addmm(bias, x, weight_ih.t()).view(T, N, 4, H)
    cells, out, tanh_c = x.new_empty(T, N, H), x.new_empty(T, N, H), x.new_empty(N, H)
    w_hh, p_if, p_o = weight_hh.t(), peephole[:2], peephole[2]
    h, c = h0, c0
    for t in range(T):
        a = gates[t]  # (N, 4, H): i, f, g, o
        a.view(N, 4 * H).addmm_(h, w_hh)
        a[:, :2].addcmul_(p_if, c.unsqueeze(1)).sigmoid_()
        a[:, 2].tanh_()
        c = torch.mul(a[:, 1], c, out=cells[t]).addcmul_(a[:, 0], a[:, 2])
        a[:, 3].addcmul_(p_o, c).sigmoid_()
        h = torch.mul(a[:, 3], torch.tanh(c, out=tanh_c), out=out[t])
    return gates, cells, out


class _PeepholeLSTM(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, weight_ih: Tensor, bias: Tensor, weight_hh: Tensor, peephole: Tensor,
        h0: Tensor, c0: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
        N, T, D = x.shape
        x = x.transpose(0, 1).reshape(T * N, D)
        gates, cells, out = _forward(x, weight_ih, bias, weight_hh, peephole, h0, c0)
        ctx.save_for_backward(x, weight_ih, bias, weight_hh, peephole, h0, c0, cells, out)
        # Backward overwrites the activations with their gradients (no second buffer of that size to allocate
        # and fault in), so they are kept outside the saved tensors, whose in-place changes autograd refuses.
        ctx.gates = gates
        return out.transpose(0, 1), out[-1].clone(), cells[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: FunctionCtx, d_out: Tensor | None, d_hT: Tensor | None, d_cT: Tensor | None
    ) -> tuple[Tensor, ...]:
        x, weight_ih, bias, weight_hh, peephole, h0, c0, cells, out = ctx.saved_tensors
        with torch.autocast(x.device.type, enabled=False):
            # A second backward over the same graph (retain_graph=True, gradcheck) finds them spent: recompute.
            gates = ctx.gates
            if gates is None:
                gates = _forward(x, weight_ih, bias, weight_hh, peephole, h0, c0)[0]
            ctx.gates = None
            T, N, _, H = gates.shape
            d_out = None if d_out is None else d_out.transpose(0, 1).contiguous()  # time-major, as the buffers
            dh = x.new_zeros(N, H) if d_hT is None else d_hT
            dc = x.new_zeros(N, H) if d_cT is None else d_cT.clone()  # updated in place
            d_peephole = x.new_zeros(3, N, H)  # summed over the batch at the end
            p_i, p_f, p_o = peephole.unbind(0)
            tanh_c, u, v = x.new_empty(N, H), x.new_empty(N, H), x.new_empty(N, H)  # u, v: scratch
            for t in range(T - 1, -1, -1):
                if t < T - 1:  # dh_t = output gradient + (gate gradients of step t+1) W_hh
                    later = gates[t + 1].view(N, 4 * H)  # by now the gradients of step t+1's gates
                    dh = later @ weight_hh if d_out is None else torch.addmm(d_out[t], later, weight_hh)
                elif d_out is not None:
                    dh = dh + d_out[t]
                # Each gate's slot takes its gradient once nothing later in the step reads the activation.
                i, f, g, o = gates[t].unbind(1)
                c, c_prev = cells[t], cells[t - 1] if t else c0
                torch.tanh(c, out=tanh_c)
                dc.add_(_tanh_backward(torch.mul(dh, o, out=u), tanh_c, grad_input=u))
                d_o = _sigmoid_backward(torch.mul(dh, tanh_c, out=u), o, grad_input=o)
                dc.addcmul_(d_o, p_o)
                torch.mul(dc, g, out=v)
                _tanh_backward(torch.mul(dc, i, out=u), g, grad_input=g)  # g's slot: d_g
                d_i = _sigmoid_backward(v, i, grad_input=i)
                torch.mul(dc, c_prev, out=u)
                dc.mul_(f)
                d_f = _sigmoid_backward(u, f, grad_input=f)
                dc.addcmul_(d_i, p_i).addcmul_(d_f, p_f)  # now the gradient reaching c_{t-1}
                d_peephole[0].addcmul_(d_i, c_prev)
                d_peephole[1].addcmul_(d_f, c_prev)
                d_peephole[2].addcmul_(d_o, c)
            # The products over all steps at once, on the (T·N, 4H) gate gradients; Σ_t d_t^T h_{t-1} pairs
            # rows N apart (step t with step t-1), and step 0 with h_0.
            flat, first = gates.view(T * N, 4 * H), gates[0].view(N, 4 * H)
            d_x = (flat @ weight_ih).view(T, N, -1).transpose(0, 1)
            d_weight_hh = (flat[N:].t() @ out.view(T * N, H)[:-N]).addmm_(first.t(), h0)
            return d_x, flat.t() @ x, flat.sum(0), d_weight_hh, d_peephole.sum(1), first @ weight_hh, dc
