"""Plain ``nn.Module`` networks: no Pyro calls here. :class:`MLP` on flat rows, and :class:`ConvEncoder` /
:class:`ConvDecoder` that read and write the same flat rows as images (``arch='conv'``).

Networks act on the last dimension and accept any leading batch dimensions, so a decoder can take
``z`` of shape ``(P, B, Z)`` when the ELBO vectorises P particles.
"""

import math

import torch  # noqa: F401 (the Example:: doctests use it)
import torch.nn as nn

from ..errors import UserError, check_int

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU, "sigmoid": nn.Sigmoid,
               "identity": nn.Identity}


class MLP(nn.Sequential):
    """Fully connected net ``in_dim -> hidden[0] -> ... -> out_dim``, activation between layers.

    Input ``(..., in_dim)``, output ``(..., out_dim)``; the last layer is linear.

    Example::

        >>> net = MLP(784, [400], 40)
        >>> net(torch.zeros(7, 128, 784)).shape, [type(m).__name__ for m in net]
        (torch.Size([7, 128, 40]), ['Linear', 'ReLU', 'Linear'])
    """

    def __init__(self, in_dim, hidden, out_dim, activation="relu"):
        if activation not in ACTIVATIONS:
            raise UserError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}",
                            param="activation")
        sizes = [check_int("in_dim", in_dim), *(check_int("hidden", h) for h in hidden), check_int("out_dim", out_dim)]
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
        self.in_dim, self.hidden, self.out_dim = in_dim, tuple(hidden), out_dim


class ConditionalMLP(nn.Module):
    """An MLP on the concatenation ``[u, c]`` of an input and a condition (e.g. a one-hot label),
    computed as ``W_u u + W_c c`` in its first layer, so ``u`` and ``c`` broadcast against each other.

    ``ConditionalMLP(u_dim, c_dim, hidden, out_dim)(u, c)`` equals ``MLP(u_dim + c_dim, hidden,
    out_dim)(cat([u, c], -1))`` with the same weights, but an enumerated label ``c`` ``(C, 1, c_dim)``
    against ``u`` ``(B, u_dim)`` costs one product ``W_u u`` for all C labels, not C of them.

    Example::

        >>> net = ConditionalMLP(784, 10, [500], 100, activation="softplus")
        >>> net(torch.zeros(32, 784), torch.eye(10)[:, None, :]).shape  # every label for each of 32 images
        torch.Size([10, 32, 100])
    """

    def __init__(self, in_dim, cond_dim, hidden, out_dim, activation="relu"):
        super().__init__()
        hidden = [check_int("hidden", h) for h in hidden]
        self.in_dim, self.cond_dim = check_int("in_dim", in_dim), check_int("cond_dim", cond_dim)
        first = hidden[0] if hidden else check_int("out_dim", out_dim)
        self.input_layer = nn.Linear(in_dim, first)
        self.condition_layer = nn.Linear(cond_dim, first, bias=False)
        self.rest = nn.Sequential(_activation(activation), MLP(first, hidden[1:], out_dim, activation)) \
            if hidden else nn.Identity()
        self.hidden, self.out_dim = tuple(hidden), out_dim

    def forward(self, u, c):
        return self.rest(self.input_layer(u) + self.condition_layer(c))  # (..., out_dim), broadcast over u and c


def image_channels_first(image_shape):
    """``(C, H, W)`` of a data set's ``image_shape``: ``(H, W)`` grey is one channel, ``(H, W, C)`` colour
    is channel-last as the loader serves it; flat data ``(D,)`` has no picture and is refused."""
    shape = tuple(int(n) for n in image_shape)
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) == 3:
        return (shape[2], shape[0], shape[1])
    raise UserError(f"arch='conv' needs images, (H, W) grey or (H, W, C) colour; this data has rows of "
                    f"{shape[0]} values without a picture shape: use arch='mlp'", param="arch")


def _halvings(height, width, layers):
    """The ``layers + 1`` spatial sizes ``(h, w)`` of a stack of stride-2 convolutions (kernel 4,
    padding 1: each halves a size, rounding down) on an ``height x width`` image."""
    sizes = [(height, width)]
    for _ in range(layers):
        h, w = sizes[-1]
        if h < 2 or w < 2:
            raise UserError(f"channels has {layers} layers, but {height} x {width} images halve only "
                            f"{len(sizes) - 1} times (each strided layer halves the picture): give fewer channels",
                            param="channels")
        sizes.append((h // 2, w // 2))
    return sizes


class ConvEncoder(nn.Module):
    """Strided convolutions, then a fully connected head: flat images ``(..., D)`` -> ``(..., out_dim)``.

    Each entry of ``channels`` is one ``Conv2d(kernel 4, stride 2, padding 1)`` layer that halves
    the picture (8x8 -> 4x4 -> 2x2; 28x28 -> 14x14 -> 7x7; 32x32 -> 16x16 -> 8x8), as the DCGAN
    discriminator (Radford et al. 2016) and the convolutional VAEs of pythae; the feature map is then
    flattened through ``MLP(C_L * h * w, hidden, out_dim)``. Rows are images flattened as the loader
    serves them (``image_shape`` ``(H, W)`` or channel-last ``(H, W, C)``); any leading dimensions
    (particles, batch, or none, as ``torch.func.vmap`` gives one row) are kept. No batch
    normalisation: each row's output depends on that row alone, as Pyro's plates and the
    contractive autoencoder's per-row Jacobian need.

    Example::

        >>> net = ConvEncoder((28, 28), [32, 64], [400], 40)
        >>> net(torch.zeros(7, 128, 784)).shape, net.feature_shape
        (torch.Size([7, 128, 40]), (64, 7, 7))
    """

    def __init__(self, image_shape, channels, hidden, out_dim, activation="relu"):
        super().__init__()
        c, h, w = image_channels_first(image_shape)
        channels = [check_int("channels", ch) for ch in channels]
        sizes = _halvings(h, w, len(channels))
        layers = []
        for a, b in zip([c, *channels[:-1]], channels, strict=False):
            layers += [nn.Conv2d(a, b, kernel_size=4, stride=2, padding=1), _activation(activation)]
        self.convs = nn.Sequential(*layers)
        self.image_shape, self.in_shape = tuple(image_shape), (c, h, w)
        self.feature_shape = (channels[-1] if channels else c, *sizes[-1])
        self.head = MLP(math.prod(self.feature_shape), hidden, out_dim, activation)
        self.in_dim, self.out_dim = c * h * w, out_dim
        #: values per row the convolutions output (for the memory estimate; the head's are counted as Linear)
        self.conv_width = sum(ch * hh * ww for ch, (hh, ww) in zip(channels, sizes[1:], strict=False))
        #: multiply-adds per row of the convolutions (each output value reads 4 x 4 x its input channels)
        self.conv_multiply_adds = sum(ch * hh * ww * a * 16 for a, ch, (hh, ww)
                                      in zip([c, *channels[:-1]], channels, sizes[1:], strict=False))

    def forward(self, x):
        lead = x.shape[:-1]
        c, h, w = self.in_shape
        images = x.reshape(-1, h, w, c).permute(0, 3, 1, 2)  # (N, C, H, W) from channel-last rows
        features = self.convs(images).flatten(1)  # (N, C_L h w)
        return self.head(features).reshape(*lead, self.out_dim)


class ConvDecoder(nn.Module):
    """A fully connected trunk, then transposed convolutions: ``(..., in_dim)`` -> ``(..., out_dim)``.

    The mirror of :class:`ConvEncoder`: ``MLP(in_dim, hidden, C_1 * h * w)`` reshaped to the
    smallest feature map, then one ``ConvTranspose2d(kernel 4, stride 2, padding 1)`` per entry of
    ``channels`` (the last one outputs the image), each doubling the picture (plus one row or
    column where the encoder rounded an odd size down, e.g. 7 -> 14 -> 28, 8 -> 4 -> 8).

    ``out_dim`` must be a multiple ``P * D`` of the image's ``D = C H W`` values: a likelihood that
    reads P numbers per value (``likelihood.num_params(D)``, e.g. a mean and a scale) gets P maps of
    C channels, returned as P consecutive blocks of D values each flattened as the data rows
    (channel-last), so ``out[..., p * D : (p + 1) * D]`` is the p-th parameter of every pixel.

    Example::

        >>> net = ConvDecoder(20, [400], [64, 32], (32, 32, 3), 2 * 3072)  # a mean and a scale per value
        >>> net(torch.zeros(7, 128, 20)).shape
        torch.Size([7, 128, 6144])
    """

    def __init__(self, in_dim, hidden, channels, image_shape, out_dim, activation="relu"):
        super().__init__()
        c, h, w = image_channels_first(image_shape)
        channels = [check_int("channels", ch) for ch in channels]
        data_dim = c * h * w
        if out_dim % data_dim:
            raise UserError(f"out_dim={out_dim} is not a multiple of the image's {data_dim} values "
                            f"({h} x {w} x {c}); a decoder outputs whole parameter maps")
        self.params = out_dim // data_dim
        sizes = _halvings(h, w, len(channels))[::-1]  # smallest first
        first = channels[0] if channels else self.params * c
        self.feature_shape = (first, *sizes[0])
        self.trunk = MLP(in_dim, hidden, math.prod(self.feature_shape), activation)
        layers = []
        outs = [*channels[1:], self.params * c]
        for i, (a, b) in enumerate(zip(channels, outs, strict=False)):
            (hs, ws), (ht, wt) = sizes[i], sizes[i + 1]
            layers.append(nn.ConvTranspose2d(a, b, kernel_size=4, stride=2, padding=1,
                                             output_padding=(ht - 2 * hs, wt - 2 * ws)))
            if i < len(channels) - 1:
                layers.append(_activation(activation))
        self.activation = _activation(activation)  # after the trunk, before the first transposed convolution
        self.deconvs = nn.Sequential(*layers)
        self.image_shape, self.out_shape = tuple(image_shape), (c, h, w)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.conv_width = sum(ch * hh * ww for ch, (hh, ww) in zip(outs, sizes[1:], strict=False))
        #: multiply-adds per row of the transposed convolutions (each input value spreads over 4 x 4 x its
        #: output channels)
        self.conv_multiply_adds = sum(a * hh * ww * b * 16 for a, b, (hh, ww)
                                      in zip(channels, outs, sizes[:-1], strict=False))

    def forward(self, z):
        lead = z.shape[:-1]
        c, h, w = self.out_shape
        features = self.trunk(z).reshape(-1, *self.feature_shape)  # (N, C_1, h, w)
        maps = self.deconvs(self.activation(features)) if len(self.deconvs) else features  # (N, P C, H, W)
        maps = maps.reshape(-1, self.params, c, h, w).permute(0, 1, 3, 4, 2)  # (N, P, H, W, C): channel-last
        return maps.reshape(*lead, self.out_dim)


def layer_width(module):
    """Values one row leaves in ``module``'s layers: every ``nn.Linear`` layer's outputs plus the
    feature maps of its convolutional nets (the unit of the memory estimates).

    Example::

        >>> layer_width(MLP(20, [400], 784))
        1184
    """
    return sum(m.out_features for m in module.modules() if isinstance(m, nn.Linear)) + \
        sum(m.conv_width for m in module.modules() if isinstance(m, (ConvEncoder, ConvDecoder)))


def layer_multiply_adds(module):
    """Multiply-adds of one row through every layer of ``module`` (each ``nn.Linear``'s weights, each
    convolution's output values times what each reads): the unit of the work estimates.

    Example::

        >>> layer_multiply_adds(MLP(20, [400], 784))
        321600
    """
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear)) + \
        sum(m.conv_multiply_adds for m in module.modules() if isinstance(m, (ConvEncoder, ConvDecoder)))


def _activation(name):
    if name not in ACTIVATIONS:
        raise UserError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}", param="activation")
    return ACTIVATIONS[name]()
