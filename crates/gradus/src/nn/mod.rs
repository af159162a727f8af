//! Networks of layers, as PyTorch's `nn.Sequential`: convolutions, pooling, batch normalization,
//! dropout, dense layers and activations, trained through the one engine like every other
//! [`Model`](crate::model::Model).
//!
//! A network is described by a [`NetworkSpec`] — the shape of its input rows, a list of
//! [`LayerSpec`]s in PyTorch's names and options, a loss and an [`Init`] — and built into a
//! [`Network`], which infers every layer's input size from the layer below, checks every shape
//! (an error names both layers and their shapes), and lays the parameters out as named segments
//! (`conv1.weight`, `conv1.bias`, `linear2.weight`, ...) of one flat buffer, so that parameter
//! groups, per-layer clipping and the vanishing/exploding diagnosis see every layer.
//!
//! Layers follow PyTorch's layouts (`conv2d` weights `[out][in][kh][kw]`, images `[C][H][W]` per
//! row), its initializations and its option names; the math of each is written out on its type in
//! `layers.rs`. Each pass is generic over [`Real`](crate::loss::Real): networks train in `f32`, and
//! the same code runs in `f64` against PyTorch's float64 reference cases. Batch normalization keeps
//! its running statistics beside the parameters (optimizers never see them); they are saved with
//! checkpoints and models.
//!
//! ```
//! use gradus::loss::Loss;
//! use gradus::nn::{LayerSpec, Network, NetworkSpec, Shape};
//!
//! // LeNet-5 on 28 × 28 grey images.
//! let layers = LayerSpec::parse_list(
//!     "conv2d(6,5,padding=2),relu,max_pool2d(2),conv2d(16,5),relu,max_pool2d(2),flatten,\
//!      linear(120),relu,linear(84),relu,linear(10)",
//! )
//! .unwrap();
//! let net = Network::new(NetworkSpec::new(Shape::image(1, 28, 28), layers, Loss::cross_entropy(0.0).unwrap())).unwrap();
//! assert_eq!(net.num_params(), 61_706);
//! assert_eq!(net.summary()[5].output, Shape::image(16, 5, 5));
//! ```

mod conv_fast;
pub(crate) mod dense;
pub(crate) mod kernels;
mod language;
mod layers;
mod network;
mod recurrent;
mod shape;
mod spec;
mod text;
pub(crate) use text::mark;

pub use language::{LanguageModel, LanguageModelSpec, RecurrentCell};
pub use layers::Mode;
pub(crate) use network::TrainingStep;
pub use network::{Carry, LayerSummary, Network, NetworkSpec, CONV_BLOCK_ROWS, DENSE_BLOCK_ROWS};
pub use shape::Shape;
pub use spec::{format_list, Init, LayerSpec};
pub use text::BagMode;
