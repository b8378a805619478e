//! The kernels of [`super::conv`] and [`super::norm`] as a burn backend extension: the flex
//! backend runs them forward, and autodiff over flex records each with its own backward
//! (gradients from the same modules), so training never reaches burn's generic conv backward
//! or the dozen element-wise ops burn composes a GroupNorm and SiLU from.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use burn::tensor::TensorData;

use super::conv::{self, ConvShape};
use super::norm::{self, NormShape};

#[backend_extension(Flex, Autodiff)]
pub trait CpuKernels: Backend {
    /// Convolution with bias, groups 1, dilation 1 and symmetric padding.
    fn fast_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;

    /// Affine GroupNorm over `[batch, channels, ..]`, then SiLU if `silu`.
    fn fast_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f32,
        silu: bool,
    ) -> FloatTensor<Self>;
}

fn norm_shape(x: &FlexTensor, groups: usize, epsilon: f32, silu: bool) -> NormShape {
    let shape = x.layout().shape();
    NormShape {
        batch: shape[0],
        channels: shape[1],
        spatial: (2..shape.num_dims()).map(|d| shape[d]).product(),
        groups,
        epsilon,
        silu,
    }
}

fn dims4(t: &FlexTensor) -> [usize; 4] {
    let shape = t.layout().shape();
    [shape[0], shape[1], shape[2], shape[3]]
}

fn shape_of(x: &FlexTensor, weight: &FlexTensor, stride: [usize; 2], pad: [usize; 2]) -> ConvShape {
    let [batch, c_in, h, w] = dims4(x);
    let [c_out, _, kh, kw] = dims4(weight);
    ConvShape {
        batch,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        stride,
        pad,
    }
}

/// The tensor's elements in row-major order (a view when it is contiguous already).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("our kernels take f32 tensors (checked before they are called)")
}

fn tensor(data: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.to_vec()))
}

impl CpuKernels for Flex {
    fn fast_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        let s = shape_of(&x, &weight, stride, padding);
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let out = conv::forward(&s, values(&x), values(&weight), Some(values(&bias)));
        tensor(out, &[s.batch, s.c_out, s.out_h(), s.out_w()])
    }

    fn fast_group_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        epsilon: f32,
        silu: bool,
    ) -> FlexTensor {
        let s = norm_shape(&x, groups, epsilon, silu);
        let dims = x.layout().shape().to_vec();
        let (x, gamma, beta) = (contiguous(x), contiguous(gamma), contiguous(beta));
        tensor(
            norm::forward(&s, values(&x), values(&gamma), values(&beta)),
            &dims,
        )
    }
}

#[derive(Debug)]
struct FastGroupNormBackward;

type NodeId = burn::backend::autodiff::NodeId;

impl Backward<Flex, 3> for FastGroupNormBackward {
    type State = (NodeId, NodeId, NodeId, usize, f32, bool);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x_state, gamma_state, beta_state, groups, epsilon, silu) = ops.state;
        let x = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(x_state));
        let gamma = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(gamma_state));
        let beta = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(beta_state));
        let s = norm_shape(&x, groups, epsilon, silu);
        let dims = x.layout().shape().to_vec();
        let (dx, dgamma, dbeta) =
            norm::backward(&s, values(&x), values(&gamma), values(&beta), values(&dy));
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, &dims));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, &[s.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, &[s.channels]));
        }
    }
}

#[derive(Debug)]
struct FastConv2dBackward;

impl Backward<Flex, 3> for FastConv2dBackward {
    type State = (NodeId, NodeId, [usize; 2], [usize; 2]);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let (x_state, weight_state, stride, padding) = ops.state;
        let x = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(x_state));
        let weight = contiguous(checkpointer.retrieve_node_output::<FlexTensor>(weight_state));
        let s = shape_of(&x, &weight, stride, padding);
        if let Some(node) = node_x {
            let dx = conv::backward_input(&s, values(&dy), values(&weight));
            grads.register::<Flex>(node.id, tensor(dx, &[s.batch, s.c_in, s.h, s.w]));
        }
        if let Some(node) = node_weight {
            let dw = conv::backward_weight(&s, values(&x), values(&dy));
            grads.register::<Flex>(node.id, tensor(dw, &[s.c_out, s.c_in, s.kh, s.kw]));
        }
        if let Some(node) = node_bias {
            let db = conv::backward_bias(&s, values(&dy));
            grads.register::<Flex>(node.id, tensor(db, &[s.c_out]));
        }
    }
}

impl<C: CheckpointStrategy> CpuKernels for Autodiff<Flex, C> {
    fn fast_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        let forward = |x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>| {
            let (x, w, b) = (
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            );
            Flex::fast_conv2d(x, w, b, stride, padding)
        };
        match FastConv2dBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (
                    prep.checkpoint(&x),
                    prep.checkpoint(&weight),
                    stride,
                    padding,
                );
                prep.finish(state, forward(x, weight, bias))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x, weight, bias)),
        }
    }

    fn fast_group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        epsilon: f32,
        silu: bool,
    ) -> FloatTensor<Self> {
        let forward = |x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>| {
            let (x, g, b) = (
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
            );
            Flex::fast_group_norm(x, g, b, groups, epsilon, silu)
        };
        match FastGroupNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let [xs, gs, bs] = [&x, &gamma, &beta].map(|t| prep.checkpoint(t));
                prep.finish((xs, gs, bs, groups, epsilon, silu), forward(x, gamma, beta))
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(x, gamma, beta)),
        }
    }
}
