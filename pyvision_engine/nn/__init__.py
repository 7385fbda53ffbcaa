"""pve.nn: modules, parameters and functional ops with torch.nn's names and semantics."""

from pyvision_engine.nn import functional, init
from pyvision_engine.nn.activation import (
    GELU, Hardsigmoid, Hardswish, LeakyReLU, LogSoftmax, PReLU, ReLU, ReLU6, Sigmoid, SiLU,
    Softmax, Tanh,
)
from pyvision_engine.nn.arena import ParameterArena
from pyvision_engine.nn.conv import (Conv2d, ConvBn2d, ConvBnReLU2d, fold_batch_norm,
                                     fuse_conv_bn_eval)
from pyvision_engine.nn.conv_transpose import ConvTranspose2d
from pyvision_engine.nn.container import (ModuleDict, ModuleList, ParameterDict, ParameterList,
                                          Sequential)
from pyvision_engine.nn.dropout import Dropout
from pyvision_engine.nn.linear import Flatten, Identity, Linear, Unflatten
from pyvision_engine.nn.loss import (
    BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss, NLLLoss,
    SmoothL1Loss,
)
from pyvision_engine.nn.module import Module, StateDictError
from pyvision_engine.nn.normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from pyvision_engine.nn.padding import ZeroPad2d
from pyvision_engine.nn.parameter import Buffer, Parameter
from pyvision_engine.nn import utils
from pyvision_engine.nn.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from pyvision_engine.nn.upsampling import Upsample

__all__ = [
    "Module", "Parameter", "Buffer", "Sequential", "ModuleList", "ModuleDict", "ParameterList",
    "ParameterDict",
    "Linear", "Identity", "Flatten", "Unflatten", "ParameterArena", "StateDictError",
    "functional", "init", "utils",
    # convolution
    "Conv2d", "ConvTranspose2d", "ConvBn2d", "ConvBnReLU2d", "fuse_conv_bn_eval", "fold_batch_norm",
    # layers
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Hardswish",
    "Hardsigmoid", "Softmax", "LogSoftmax",
    "BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm",
    "Dropout", "ZeroPad2d", "Upsample",
    "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss",
    "BCEWithLogitsLoss", "KLDivLoss",
]

from pyvision_engine.nn.activation import (  # noqa: E402
    CELU, ELU, SELU, Hardtanh, LogSigmoid, Mish, Softmax2d, Softmin, Softplus, Softsign,
    Tanhshrink, Threshold,
)

__all__ += ["Threshold", "Hardtanh", "ELU", "CELU", "SELU", "Softplus", "Mish", "Softsign",
            "Tanhshrink", "LogSigmoid", "Softmin", "Softmax2d"]
from pyvision_engine.nn.channelshuffle import ChannelShuffle  # noqa: E402
from pyvision_engine.nn.dropout import AlphaDropout, Dropout2d  # noqa: E402
from pyvision_engine.nn.padding import (  # noqa: E402
    CircularPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d,
)
from pyvision_engine.nn.pixelshuffle import PixelShuffle, PixelUnshuffle  # noqa: E402
from pyvision_engine.nn.upsampling import UpsamplingBilinear2d, UpsamplingNearest2d  # noqa: E402

__all__ += ["Dropout2d", "AlphaDropout", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d",
            "CircularPad2d", "PixelShuffle", "PixelUnshuffle", "ChannelShuffle",
            "UpsamplingNearest2d", "UpsamplingBilinear2d"]
from pyvision_engine.nn.instancenorm import InstanceNorm2d  # noqa: E402
from pyvision_engine.nn.normalization import LocalResponseNorm  # noqa: E402

__all__ += ["InstanceNorm2d", "LocalResponseNorm"]
from pyvision_engine.nn.conv import Conv1d  # noqa: E402
from pyvision_engine.nn.conv_transpose import ConvTranspose1d  # noqa: E402
from pyvision_engine.nn.dropout import Dropout1d  # noqa: E402
from pyvision_engine.nn.instancenorm import InstanceNorm1d  # noqa: E402
from pyvision_engine.nn.padding import (  # noqa: E402
    CircularPad1d, ConstantPad1d, ReflectionPad1d, ReplicationPad1d, ZeroPad1d,
)
from pyvision_engine.nn.pooling import (  # noqa: E402
    AdaptiveAvgPool1d, AdaptiveMaxPool1d, AvgPool1d, MaxPool1d,
)

__all__ += ["Conv1d", "ConvTranspose1d", "MaxPool1d", "AvgPool1d", "AdaptiveAvgPool1d",
            "AdaptiveMaxPool1d", "Dropout1d", "InstanceNorm1d", "ZeroPad1d", "ConstantPad1d",
            "ReflectionPad1d", "ReplicationPad1d", "CircularPad1d"]
from pyvision_engine.nn.activation import GLU, Hardshrink, RReLU, Softshrink  # noqa: E402
from pyvision_engine.nn.distance import CosineSimilarity, PairwiseDistance  # noqa: E402
from pyvision_engine.nn.fold import Fold, Unfold  # noqa: E402
from pyvision_engine.nn.pooling import LPPool2d, MaxUnpool2d  # noqa: E402

__all__ += ["Hardshrink", "Softshrink", "RReLU", "GLU", "CosineSimilarity", "PairwiseDistance",
            "Fold", "Unfold", "MaxUnpool2d", "LPPool2d"]
from pyvision_engine.nn.loss import (  # noqa: E402
    CosineEmbeddingLoss, GaussianNLLLoss, HingeEmbeddingLoss, MarginRankingLoss,
    MultiLabelMarginLoss, MultiLabelSoftMarginLoss, MultiMarginLoss, PoissonNLLLoss,
    SoftMarginLoss, TripletMarginLoss, TripletMarginWithDistanceLoss,
)

__all__ += ["MultiLabelSoftMarginLoss", "MultiLabelMarginLoss", "MultiMarginLoss",
            "SoftMarginLoss", "MarginRankingLoss", "HingeEmbeddingLoss", "CosineEmbeddingLoss",
            "TripletMarginLoss", "TripletMarginWithDistanceLoss", "PoissonNLLLoss",
            "GaussianNLLLoss"]
from pyvision_engine.nn.lazy import (  # noqa: E402
    LazyBatchNorm1d, LazyBatchNorm2d, LazyConv1d, LazyConv2d, LazyConvTranspose1d,
    LazyConvTranspose2d, LazyInstanceNorm1d, LazyInstanceNorm2d, LazyLinear,
)
from pyvision_engine.nn.parameter import UninitializedBuffer, UninitializedParameter  # noqa: E402

__all__ += ["UninitializedParameter", "UninitializedBuffer", "LazyLinear", "LazyConv1d",
            "LazyConv2d", "LazyConvTranspose1d", "LazyConvTranspose2d", "LazyBatchNorm1d",
            "LazyBatchNorm2d", "LazyInstanceNorm1d", "LazyInstanceNorm2d"]
from pyvision_engine.nn.linear import Bilinear  # noqa: E402
from pyvision_engine.nn.normalization import RMSNorm  # noqa: E402

__all__ += ["RMSNorm", "Bilinear"]
from pyvision_engine.nn.sparse import Embedding  # noqa: E402

__all__ += ["Embedding"]
from pyvision_engine.nn.pooling import LPPool1d, MaxUnpool1d  # noqa: E402

__all__ += ["LPPool1d", "MaxUnpool1d"]
from pyvision_engine.nn.dropout import FeatureAlphaDropout  # noqa: E402

__all__ += ["FeatureAlphaDropout"]
# Sequence layers load on first use (module __getattr__), keeping `import pyvision_engine`
# fast for CNN programs that never touch them.
_LAZY = {name: "pyvision_engine.nn.attention"
         for name in ("MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder")}
_LAZY.update({name: "pyvision_engine.nn.rnn"
              for name in ("RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell",
                           "LSTMCell", "GRUCell")})
_LAZY["CTCLoss"] = "pyvision_engine.nn.ctc"
_LAZY.update({name: "pyvision_engine.nn.transformer"
              for name in ("TransformerDecoderLayer", "TransformerDecoder", "Transformer")})
_LAZY.update({"FractionalMaxPool2d": "pyvision_engine.nn.fractional_pool",
              "EmbeddingBag": "pyvision_engine.nn.embedding_bag",
              "AdaptiveLogSoftmaxWithLoss": "pyvision_engine.nn.adaptive",
              "LinearCrossEntropyLoss": "pyvision_engine.nn.linear_cross_entropy"})
__all__ += list(_LAZY)
from pyvision_engine._lazy import lazy_exports  # noqa: E402

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
