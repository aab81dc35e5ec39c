"""2-D convolution from scratch: naive loops, im2col + one GEMM, shifted 1x1 products, transposed convolution,
the backward pass written as convolutions, and a `Conv2d` module whose state_dict is `nn.Conv2d`'s.

Every function takes the same arguments as its `torch.nn.functional` twin, so a check is one line:
`torch.testing.assert_close(conv2d_im2col(x, w, b, 2, 1), F.conv2d(x, w, b, 2, 1))`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IntPair = int | tuple[int, int]
Padding = int | tuple[int, int] | str


def _pair(v: IntPair) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _pads(padding: Padding, kernel: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """Resolve `padding` to (top, bottom, left, right); "same" puts the odd extra row/column at the end, as torch."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise RuntimeError(f"padding must be an int, a pair, 'same' or 'valid', not {padding!r}")
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    ph, pw = _pair(padding)
    return (ph, ph, pw, pw)


def _prepare(input: Tensor, weight: Tensor, stride: IntPair, padding: Padding, dilation: IntPair, groups: int):
    """Pad the input and return everything the forward variants need, with torch's shape checks."""
    stride, dilation = _pair(stride), _pair(dilation)
    kh, kw = weight.shape[-2:]
    if isinstance(padding, str) and padding == "same" and stride != (1, 1):
        raise RuntimeError("padding='same' is only defined for stride 1")
    if input.shape[1] != weight.shape[1] * groups:
        raise RuntimeError(f"input has {input.shape[1]} channels, weight expects {weight.shape[1]} x {groups} groups")
    top, bottom, left, right = _pads(padding, (kh, kw), dilation)
    xp = F.pad(input, (left, right, top, bottom))  # (N, C, Hp, Wp) zero padded
    Hp, Wp = xp.shape[-2:]
    Ho = (Hp - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    Wo = (Wp - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if Ho <= 0 or Wo <= 0:
        raise RuntimeError(f"kernel {(kh, kw)} with dilation {dilation} is larger than the padded input {(Hp, Wp)}")
    return xp, stride, dilation, (kh, kw), (Ho, Wo)


def _add_bias(out: Tensor, bias: Tensor | None) -> Tensor:
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def conv2d_naive(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
                 padding: Padding = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """Loop over every output pixel: take the (dilated) patch under the kernel and dot it with each filter."""
    xp, (sh, sw), (dh, dw), (kh, kw), (Ho, Wo) = _prepare(input, weight, stride, padding, dilation, groups)
    N, C = xp.shape[:2]
    O = weight.shape[0]
    G, Cg, Og = groups, C // groups, O // groups
    w = weight.reshape(G, Og, Cg * kh * kw)  # (G, Og, Cg*kh*kw): one row per filter
    rows = []
    for oh in range(Ho):
        cols = []
        for ow in range(Wo):
            h0, w0 = oh * sh, ow * sw
            patch = xp[:, :, h0:h0 + dh * (kh - 1) + 1:dh, w0:w0 + dw * (kw - 1) + 1:dw]  # (N, C, kh, kw)
            patch = patch.reshape(N, G, Cg * kh * kw)
            cols.append((w * patch.unsqueeze(2)).sum(-1).reshape(N, O))  # (N, G, Og) -> (N, O)
        rows.append(torch.stack(cols, dim=-1))  # (N, O, Wo)
    return _add_bias(torch.stack(rows, dim=-2), bias)  # (N, O, Ho, Wo)


def conv2d_im2col(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
                  padding: Padding = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """im2col as a strided view of the channels-last input (`Tensor.unfold`, no copy), one copy into the
    column matrix (one row per output pixel), then one GEMM per group."""
    xp, (sh, sw), (dh, dw), (kh, kw), (Ho, Wo) = _prepare(input, weight, stride, padding, dilation, groups)
    N, C = xp.shape[:2]
    O = weight.shape[0]
    G, Cg, Og = groups, C // groups, O // groups
    x = xp.permute(0, 2, 3, 1)  # (N, Hp, Wp, C): channels-last view
    # windows of the dilated kernel's extent, every `stride` pixels, then keep every `dilation`-th tap
    win = x.unfold(1, dh * (kh - 1) + 1, sh).unfold(2, dw * (kw - 1) + 1, sw)  # (N, Ho, Wo, C, eh, ew)
    win = win[..., ::dh, ::dw]  # (N, Ho, Wo, C, kh, kw): still a view into xp
    cols = win.reshape(N * Ho * Wo, G, Cg * kh * kw)  # the im2col matrix (the one copy)
    w = weight.reshape(G, Og, Cg * kh * kw).transpose(1, 2)  # (G, Cg*kh*kw, Og)
    out = torch.bmm(cols.transpose(0, 1), w)  # (G, N*Ho*Wo, Og): one GEMM per group
    out = out.transpose(0, 1).reshape(N, Ho, Wo, O).permute(0, 3, 1, 2)  # (N, O, Ho, Wo)
    return _add_bias(out.contiguous(), bias)


def conv2d_unfold(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
                  padding: Padding = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """im2col with `F.unfold` (torch builds the column matrix) and one GEMM: the textbook version."""
    xp, stride, dilation, (kh, kw), (Ho, Wo) = _prepare(input, weight, stride, padding, dilation, groups)
    N, C = xp.shape[:2]
    O = weight.shape[0]
    G = groups
    cols = F.unfold(xp, (kh, kw), dilation=dilation, stride=stride)  # (N, C*kh*kw, L)
    cols = cols.view(N, G, (C // G) * kh * kw, Ho * Wo)
    out = weight.reshape(G, O // G, -1) @ cols  # (N, G, Og, L)
    return _add_bias(out.reshape(N, O, Ho, Wo), bias)


def conv2d_shifted(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
                   padding: Padding = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """A KxK convolution is the sum of K*K 1x1 convolutions (GEMMs) over shifted copies of the input.

    With stride 1 the shift is free: on the flattened channels-last padded input, tap (i, j) is the contiguous row
    slice starting at i*dh*Wp + j*dw, so each GEMM reads the input in place and accumulates into one output on the
    padded grid (the extra Wp-Wo columns per row are computed, then dropped). With a stride, each tap's strided
    slice is copied once.
    """
    xp, (sh, sw), (dh, dw), (kh, kw), (Ho, Wo) = _prepare(input, weight, stride, padding, dilation, groups)
    N, C, Hp, Wp = xp.shape
    O = weight.shape[0]
    G, Cg, Og = groups, C // groups, O // groups
    x = xp.permute(0, 2, 3, 1).contiguous()  # (N, Hp, Wp, C): channels last
    w = weight.reshape(G, Og, Cg, kh, kw).permute(3, 4, 0, 2, 1)  # (kh, kw, G, Cg, Og)
    flat = (sh, sw) == (1, 1)
    M = N * Hp * Wp - (dh * (kh - 1) * Wp + dw * (kw - 1)) if flat else N * Ho * Wo  # rows of the output
    out = None
    for i in range(kh):
        for j in range(kw):
            if flat:
                off = i * dh * Wp + j * dw
                xs = x.view(N * Hp * Wp, C)[off:off + M]  # (M, C): the shifted input, a view
            else:
                xs = x[:, i * dh:i * dh + sh * (Ho - 1) + 1:sh, j * dw:j * dw + sw * (Wo - 1) + 1:sw]
                xs = xs.reshape(M, C)  # (M, C): the strided tap, copied
            xs = xs.view(M, G, Cg).transpose(0, 1)  # (G, M, Cg)
            out = torch.bmm(xs, w[i, j]) if out is None else out.baddbmm_(xs, w[i, j])  # (G, M, Og)
    out = out.transpose(0, 1).reshape(M, O)
    if flat:  # back from the padded grid: pad the missing tail rows, keep the Ho x Wo valid pixels
        out = F.pad(out, (0, 0, 0, N * Hp * Wp - M)).view(N, Hp, Wp, O)[:, :Ho, :Wo]
    out = out.reshape(N, Ho, Wo, O).permute(0, 3, 1, 2)  # (N, O, Ho, Wo)
    return _add_bias(out.contiguous(), bias)


BLOCK_ROWS = 4096  # output rows per cache block in the shifted GEMMs (4096 x 64 floats = 1 MiB)


def _conv2d_shifted_blocked(input: Tensor, weight: Tensor, bias: Tensor | None, pads: tuple[int, int, int, int],
                            dilation: tuple[int, int], out_hw: tuple[int, int]) -> Tensor:
    """`conv2d_shifted`'s math (stride 1, one group) made cache-friendly, without autograd.

    The unblocked version streams the whole output through memory once per tap (K*K times); here the output rows
    are cut into blocks of about `BLOCK_ROWS` that stay in the L2 cache while all K*K GEMMs accumulate into them,
    in place. Blocks follow whole images and skip the padded bottom rows that end each run of images (they hold no
    output pixel). The input is read once, into a zero-bordered channels-last copy (padding and layout in one
    pass), and the bias enters through the first GEMM of each block (no separate pass over the output).
    """
    N, C, H, W = input.shape
    O, _, kh, kw = weight.shape
    (top, bottom, left, right), (dh, dw), (Ho, Wo) = pads, dilation, out_hw
    Hp, Wp = H + top + bottom, W + left + right
    x = input.new_empty(N, Hp, Wp, C)  # channels last, zero border: one row per padded pixel
    x[:, :top].zero_(), x[:, top + H:].zero_()
    x[:, top:top + H, :left].zero_(), x[:, top:top + H, left + W:].zero_()
    x[:, top:top + H, left:left + W] = input.permute(0, 2, 3, 1)  # (N, H, W, C)
    x = x.view(N * Hp * Wp, C)
    w = weight.permute(2, 3, 1, 0).contiguous()  # (kh, kw, C, O)
    taps = [(i * dh * Wp + j * dw, w[i, j]) for i in range(kh) for j in range(kw)]
    M = N * Hp * Wp - taps[-1][0]  # rows whose every tap stays inside the input
    out = torch.empty(N * Hp * Wp, O, dtype=input.dtype, device=input.device)
    rows_per_image = Ho * Wp  # output rows of one image on the padded grid (the last Hp-Ho rows are skipped)
    images = max(1, BLOCK_ROWS // rows_per_image)
    for n0 in range(0, N, images):
        for start in range(n0 * Hp * Wp, (min(n0 + images, N) - 1) * Hp * Wp + rows_per_image, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, (min(n0 + images, N) - 1) * Hp * Wp + rows_per_image, M)
            block = out[start:stop]  # (rows, O): stays in cache across the K*K taps
            first = x[start + taps[0][0]:stop + taps[0][0]]
            if bias is None:
                torch.mm(first, taps[0][1], out=block)
            else:
                torch.addmm(bias, first, taps[0][1], out=block)  # bias broadcast over the rows
            for off, w_tap in taps[1:]:
                block.addmm_(x[start + off:stop + off], w_tap)
    out = out.view(N, Hp, Wp, O)[:, :Ho, :Wo]  # keep the valid pixels
    return out.permute(0, 3, 1, 2).contiguous()  # (N, O, Ho, Wo)


def _forward_plan(input_shape: torch.Size, weight_shape: torch.Size, stride: IntPair, padding: Padding,
                  dilation: IntPair, groups: int) -> tuple[str, tuple | None]:
    """Which from-scratch forward `conv2d` runs for these shapes: "pointwise", "shifted" or "im2col"; and the
    shifted path's arguments (pads, dilation, output size) wherever that path could run (stride 1, one group)."""
    _, _, kh, kw = weight_shape
    _, _, H, W = input_shape
    stride, dilation = _pair(stride), _pair(dilation)
    pads = _pads(padding, (kh, kw), dilation)
    if (kh, kw) == (1, 1) and stride == (1, 1) and groups == 1 and pads == (0,) * 4:
        return "pointwise", None
    Hp, Wp = H + pads[0] + pads[1], W + pads[2] + pads[3]
    Ho, Wo = Hp - dilation[0] * (kh - 1), Wp - dilation[1] * (kw - 1)  # stride 1
    if stride != (1, 1) or groups != 1 or Ho <= 0 or Wo <= 0:
        return "im2col", None
    shifted = (pads, dilation, (Ho, Wo))
    # the shifted GEMMs compute Hp x Wp pixels to keep Ho x Wo: worth it while that waste is small
    return ("shifted" if Hp * Wp <= 1.4 * Ho * Wo else "im2col"), shifted


def _conv2d_fastest(input: Tensor, weight: Tensor, bias: Tensor | None, stride: IntPair, padding: Padding,
                    dilation: IntPair, groups: int) -> Tensor:
    """Run the forward `_forward_plan` picks (no autograd; `conv2d` adds the backward). The output is a fresh
    tensor, so the bias is added in place where no GEMM can take it."""
    path, shifted = _forward_plan(input.shape, weight.shape, stride, padding, dilation, groups)
    if path == "pointwise":
        (O, C), (N, _, H, W) = weight.shape[:2], input.shape
        out = weight.reshape(O, C) @ input.reshape(N, C, H * W)  # (N, O, H*W): weight broadcast over the batch
        return out.view(N, O, H, W) if bias is None else out.view(N, O, H, W).add_(bias.view(1, -1, 1, 1))
    if path == "im2col":
        out = conv2d_im2col(input, weight, None, stride, padding, dilation, groups)  # also raises torch's errors
        return out if bias is None else out.add_(bias.view(1, -1, 1, 1))
    return _conv2d_shifted_blocked(input, weight, bias, *shifted)


class _Conv2dFunction(torch.autograd.Function):
    """Forward with the fastest path, backward with `conv2d_backward`: both from scratch."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(input, weight)
        ctx.args, ctx.has_bias = (stride, padding, dilation, groups), bias is not None
        return _conv2d_fastest(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        grad_input, grad_weight, grad_bias = conv2d_backward(grad_output, input, weight, *ctx.args)
        return grad_input, grad_weight, grad_bias if ctx.has_bias else None, None, None, None, None


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
           padding: Padding = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """The fastest from-scratch convolution, with its backward written as convolutions (`conv2d_backward`).

    Forward: a pointwise (1x1, stride 1, unpadded) convolution is a single GEMM on the input as it lies in memory;
    stride-1 convolutions whose padded grid is at most 1.4x the output use the shifted 1x1 GEMMs in cache-sized
    blocks (no im2col copy); everything else goes through im2col + one GEMM per group.
    """
    if input.dim() != 4 or weight.dim() != 4:
        raise RuntimeError(f"conv2d expects a 4-d input and weight, got {input.dim()}-d and {weight.dim()}-d")
    if input.shape[1] != weight.shape[1] * groups:
        raise RuntimeError(f"input has {input.shape[1]} channels, weight expects {weight.shape[1]} x {groups} groups")
    return _Conv2dFunction.apply(input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
                     padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
                     dilation: IntPair = 1) -> Tensor:
    """Transposed convolution as a plain convolution: insert stride-1 zeros between input pixels, pad by
    d*(k-1)-p (cropping where negative), and convolve with the kernel flipped and its in/out channels swapped."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(_pair, (stride, padding, output_padding, dilation))
    N, C, H, W = input.shape
    Cg, Og, kh, kw = weight.shape  # weight: (C, O/groups, kh, kw), as nn.ConvTranspose2d
    G = groups
    z = input.new_zeros(N, C, (H - 1) * sh + 1, (W - 1) * sw + 1)
    z[:, :, ::sh, ::sw] = input  # zero insertion (autograd records the copy)
    eh, ew = dh * (kh - 1) - ph, dw * (kw - 1) - pw  # padding of the equivalent convolution, per side
    z = F.pad(z, (ew, ew + opw, eh, eh + oph))  # negative amounts crop
    w = weight.reshape(G, Cg // G, Og, kh, kw).transpose(1, 2).reshape(G * Og, Cg // G, kh, kw)
    return conv2d(z, w.flip(-1, -2), bias, 1, 0, (dh, dw), G)  # (N, G*Og, Ho, Wo)


def conv_transpose2d_scatter(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: IntPair = 1,
                             padding: IntPair = 0, output_padding: IntPair = 0, groups: int = 1,
                             dilation: IntPair = 1) -> Tensor:
    """Transposed convolution by its definition: every input pixel scatters its value times the kernel into the
    output (one GEMM per kernel tap, added into a strided slice), then `padding` is cropped from each side."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(_pair, (stride, padding, output_padding, dilation))
    N, C, H, W = input.shape
    _, Og, kh, kw = weight.shape
    G = groups
    Hf, Wf = (H - 1) * sh + dh * (kh - 1) + 1 + oph, (W - 1) * sw + dw * (kw - 1) + 1 + opw  # uncropped size
    out = input.new_zeros(N, G * Og, Hf, Wf)
    x = input.reshape(N, G, C // G, H * W)
    w = weight.reshape(G, C // G, Og, kh, kw)
    for i in range(kh):
        for j in range(kw):
            contrib = w[:, :, :, i, j].transpose(1, 2) @ x  # (N, G, Og, H*W): each pixel times tap (i, j)
            rows = slice(i * dh, i * dh + (H - 1) * sh + 1, sh)
            cols = slice(j * dw, j * dw + (W - 1) * sw + 1, sw)
            out[:, :, rows, cols] += contrib.reshape(N, G * Og, H, W)
    out = out[:, :, ph:Hf - ph, pw:Wf - pw]
    return _add_bias(out, bias)


def conv2d_backward(grad_output: Tensor, input: Tensor, weight: Tensor, stride: IntPair = 1,
                    padding: Padding = 0, dilation: IntPair = 1,
                    groups: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of `conv2d` written as convolutions: dx is a transposed convolution of dy with W, dW is a
    convolution of x with dy (batch as the channel sum; stride and dilation swap roles), db sums dy."""
    xp, (sh, sw), (dh, dw), (kh, kw), (Ho, Wo) = _prepare(input, weight, stride, padding, dilation, groups)
    N, C, Hp, Wp = xp.shape
    G, Cg = groups, C // groups
    go = grad_output
    # dx on the padded grid: rows/columns the last window never reached get output_padding (zero gradient)
    rh, rw = Hp - ((Ho - 1) * sh + dh * (kh - 1) + 1), Wp - ((Wo - 1) * sw + dw * (kw - 1) + 1)
    gxp = conv_transpose2d(go, weight, None, (sh, sw), 0, (rh, rw), G, (dh, dw))  # (N, C, Hp, Wp)
    top, bottom, left, right = _pads(padding, (kh, kw), (dh, dw))
    grad_input = gxp[:, :, top:Hp - bottom, left:Wp - right]
    # dW[o, c, i, j] = sum_n,oh,ow dy[n, o, oh, ow] * xp[n, c, i*dh + oh*sh, j*dw + ow*sw]:
    # a convolution of xp (batch Cg, channels G*N) with dy as the kernel (G*Og filters over N channels)
    xt = xp.reshape(N, G, Cg, Hp, Wp).permute(2, 1, 0, 3, 4).reshape(Cg, G * N, Hp, Wp)
    gt = go.transpose(0, 1)  # (O, N, Ho, Wo)
    gw = conv2d(xt, gt, None, (dh, dw), 0, (sh, sw), G)  # (Cg, O, >=kh, >=kw)
    grad_weight = gw[:, :, :kh, :kw].transpose(0, 1)  # (O, Cg, kh, kw)
    grad_bias = go.sum(dim=(0, 2, 3))
    return grad_input, grad_weight, grad_bias


class Conv2d(nn.Module):
    """From-scratch twin of `nn.Conv2d` (zero padding): same arguments, parameters, init and state_dict."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: Padding = 0, dilation: IntPair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must divide by groups {groups}")
        if padding_mode != "zeros":
            raise ValueError(f"only padding_mode='zeros' is implemented, not {padding_mode!r}")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"padding must be an int, a pair, 'same' or 'valid', not {padding!r}")
        if padding == "same" and _pair(stride) != (1, 1):
            raise ValueError("padding='same' is only defined for stride 1")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = _pair(kernel_size), _pair(stride), _pair(dilation)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size, **factory))
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's init: kaiming-uniform with a=sqrt(5) (bound 1/sqrt(fan_in)) for weight and bias."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight[0].numel())
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        unbatched = input.dim() == 3
        x = input.unsqueeze(0) if unbatched else input  # (N, C, H, W)
        out = conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return out.squeeze(0) if unbatched else out

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, bias={self.bias is not None}")
