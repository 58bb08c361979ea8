"""Attribution methods for any network following :mod:`gradejax.nets`'s calling convention.

Pure, jit-compiled, batched over images and targets, computed at the highest matmul precision
unless told otherwise (``precision=``). See :mod:`gradejax.attribution.registry` for the list.
"""
from gradejax.attribution.class_activation import (cam, grad_cam, guided_grad_cam,
                                                   linear_head_weights)
from gradejax.attribution.common import to_heatmap
from gradejax.attribution.deeplift import deeplift_rescale
from gradejax.attribution.gradients import (gradient_x_input, integrated_gradients, saliency,
                                            smoothgrad)
from gradejax.attribution.guided import deconvnet, guided_backprop
from gradejax.attribution.occlusion_sensitivity import (occlusion, occlusion_grid,
                                                       occlusion_multiscale)
from gradejax.attribution.regions import region_class_map
from gradejax.attribution.registry import METHODS, compute, heatmap
from gradejax.attribution.superpixels import slic_segments, superpixel_ablation
