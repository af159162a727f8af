//! What a network is made of, as the user writes it: a list of layer specifications in
//! PyTorch's names and options, serializable (saved models, `[[layers]]` tables of a TOML
//! configuration) and parseable from one line (`--layers "conv2d(6,5,padding=2),relu,..."`).
//!
//! A specification leaves out what the layer below determines (the input features of `linear`,
//! the input channels of `conv2d`, the features of `batch_norm1d`): the network infers them when
//! it is built and checks every shape then.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// How weights are initialized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// PyTorch's defaults for each layer: `linear` and `conv2d` weights and biases uniform in
    /// `±1/√fan_in` (`kaiming_uniform_(a=√5)`), batch-norm scales 1 and shifts 0.
    #[default]
    Torch,
    /// He (Kaiming) normal weights `N(0, 2 / ((1 + a²) fan_in))`, `a` the negative slope of a leaky
    /// relu that follows (0 otherwise), zero biases.
    He,
    /// Xavier (Glorot) uniform weights `U(±√(6 / (fan_in + fan_out)))`, zero biases.
    Xavier,
    /// He for weights followed by a relu or leaky relu, Xavier for the others, zero biases: the
    /// scheme of [`crate::mlp::Mlp`].
    Auto,
}

impl Init {
    /// The name as written in options (`torch`, `he`, `xavier`, `auto`).
    pub fn name(self) -> &'static str {
        match self {
            Init::Torch => "torch",
            Init::He => "he",
            Init::Xavier => "xavier",
            Init::Auto => "auto",
        }
    }

    /// Parses a name.
    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        Ok(match name {
            "torch" => Init::Torch,
            "he" | "kaiming" => Init::He,
            "xavier" | "glorot" => Init::Xavier,
            "auto" => Init::Auto,
            other => return Err(ConfigError::new("init", other, "torch, he, xavier or auto")),
        })
    }
}

fn default_true() -> bool {
    true
}
fn default_one() -> usize {
    1
}
fn default_eps() -> f64 {
    1e-5
}
fn default_momentum() -> f64 {
    0.1
}
fn default_dropout() -> f64 {
    0.5
}
fn default_slope() -> f64 {
    0.01
}

/// One layer, in PyTorch's names and options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// `torch.nn.Linear`: `y = x Wᵀ + b` over the last dimension; `out_features` may be left out
    /// on the last layer, where the task gives it.
    Linear {
        /// Output features.
        #[serde(default)]
        out_features: Option<usize>,
        /// Whether the layer adds a bias.
        #[serde(default = "default_true")]
        bias: bool,
    },
    /// `torch.nn.Conv2d` with a square kernel.
    Conv2d {
        /// Output channels.
        out_channels: usize,
        /// Side of the square kernel.
        kernel_size: usize,
        /// Step between windows.
        #[serde(default = "default_one")]
        stride: usize,
        /// Zeros added on every side.
        #[serde(default)]
        padding: usize,
    },
    /// `torch.nn.MaxPool2d` (no padding, floor mode).
    MaxPool2d {
        /// Side of the square window.
        kernel_size: usize,
        /// Step between windows (default: the window's side).
        #[serde(default)]
        stride: Option<usize>,
    },
    /// `torch.nn.AvgPool2d` (no padding, floor mode).
    AvgPool2d {
        /// Side of the square window.
        kernel_size: usize,
        /// Step between windows (default: the window's side).
        #[serde(default)]
        stride: Option<usize>,
    },
    /// `torch.nn.Flatten`: one row of all the values.
    Flatten,
    /// `torch.nn.BatchNorm1d` over the features of flat rows (or the channels of `[C, L]` rows).
    BatchNorm1d {
        /// Added to the variance.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Weight of the batch in the running statistics.
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    /// `torch.nn.BatchNorm2d` over the channels of images.
    BatchNorm2d {
        /// Added to the variance.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Weight of the batch in the running statistics.
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    /// `torch.nn.Dropout` (inverted: kept values are scaled by `1 / (1 − p)` in training).
    Dropout {
        /// Probability of zeroing a value.
        #[serde(default = "default_dropout")]
        p: f64,
    },
    /// `torch.nn.ReLU`.
    Relu,
    /// `torch.nn.LeakyReLU`.
    LeakyRelu {
        /// Slope for negative inputs.
        #[serde(default = "default_slope")]
        negative_slope: f64,
    },
    /// `torch.nn.Tanh`.
    Tanh,
    /// `torch.nn.Sigmoid`.
    Sigmoid,
    /// `torch.nn.GELU` (exact, with `erf`).
    Gelu,
}

impl LayerSpec {
    /// PyTorch's functional name of the layer (`conv2d`, `max_pool2d`, `relu`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "linear",
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::MaxPool2d { .. } => "max_pool2d",
            LayerSpec::AvgPool2d { .. } => "avg_pool2d",
            LayerSpec::Flatten => "flatten",
            LayerSpec::BatchNorm1d { .. } => "batch_norm1d",
            LayerSpec::BatchNorm2d { .. } => "batch_norm2d",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Relu => "relu",
            LayerSpec::LeakyRelu { .. } => "leaky_relu",
            LayerSpec::Tanh => "tanh",
            LayerSpec::Sigmoid => "sigmoid",
            LayerSpec::Gelu => "gelu",
        }
    }

    /// The prefix of the layer's parameter names (`conv` for `conv1.weight`), for layers with
    /// parameters.
    pub fn param_prefix(&self) -> Option<&'static str> {
        match self {
            LayerSpec::Linear { .. } => Some("linear"),
            LayerSpec::Conv2d { .. } => Some("conv"),
            LayerSpec::BatchNorm1d { .. } | LayerSpec::BatchNorm2d { .. } => Some("bn"),
            _ => None,
        }
    }

    /// Parses a comma-separated list of layers in PyTorch's names, positional options first:
    /// `conv2d(out_channels, kernel_size, stride=1, padding=0)`, `linear(out_features)`,
    /// `max_pool2d(kernel_size, stride=kernel_size)`, `avg_pool2d(...)`, `flatten`,
    /// `batch_norm1d(eps=1e-5, momentum=0.1)`, `batch_norm2d(...)`, `dropout(p=0.5)`, `relu`,
    /// `leaky_relu(negative_slope=0.01)`, `tanh`, `sigmoid`, `gelu`. Names are also accepted in
    /// PyTorch's class spelling (`Conv2d`, `MaxPool2d`, `ReLU`).
    pub fn parse_list(text: &str) -> Result<Vec<LayerSpec>, ConfigError> {
        let mut layers = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // One item: a name, optionally followed by `( ... )`, then a comma or the end.
            let name_end = rest.find(['(', ',']).unwrap_or(rest.len());
            let name = rest[..name_end].trim();
            let (args, after) = if rest[name_end..].starts_with('(') {
                let close = rest[name_end..].find(')').ok_or_else(|| {
                    ConfigError::new("layers", quote(rest), "a closing `)` after the layer's options")
                })?;
                (Some(&rest[name_end + 1..name_end + close]), &rest[name_end + close + 1..])
            } else {
                (None, &rest[name_end..])
            };
            layers.push(Self::parse_one(name, args.unwrap_or(""))?);
            let after = after.trim_start();
            rest = match after.strip_prefix(',') {
                Some(r) => r.trim_start(),
                None if after.is_empty() => after,
                None => return Err(ConfigError::new("layers", quote(after), "a comma between layers")),
            };
        }
        if layers.is_empty() {
            return Err(ConfigError::new("layers", "(empty)", "at least one layer, e.g. `linear(128),relu,linear`"));
        }
        Ok(layers)
    }

    fn parse_one(name: &str, args: &str) -> Result<LayerSpec, ConfigError> {
        let canonical = canonical_name(name)
            .ok_or_else(|| ConfigError::new("layers", quote(name), "a layer name: one of the layers of `--layers`"))?;
        let mut positional: Vec<&str> = Vec::new();
        let mut named: Vec<(&str, &str)> = Vec::new();
        for arg in args.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match arg.split_once('=') {
                Some((k, v)) => named.push((k.trim(), v.trim())),
                None if named.is_empty() => positional.push(arg),
                None => {
                    return Err(ConfigError::new(
                        "layers",
                        format!("{canonical}({args})"),
                        "positional options before named ones",
                    ))
                }
            }
        }
        let mut options = Options { layer: canonical, args, positional, named, used: Vec::new() };
        let spec = match canonical {
            "linear" => LayerSpec::Linear {
                out_features: options.size(0, "out_features")?,
                bias: options.flag("bias")?.unwrap_or(true),
            },
            "conv2d" => LayerSpec::Conv2d {
                out_channels: options.required(0, "out_channels")?,
                kernel_size: options.required(1, "kernel_size")?,
                stride: options.size(2, "stride")?.unwrap_or(1),
                padding: options.count(3, "padding")?.unwrap_or(0),
            },
            "max_pool2d" => LayerSpec::MaxPool2d {
                kernel_size: options.required(0, "kernel_size")?,
                stride: options.size(1, "stride")?,
            },
            "avg_pool2d" => LayerSpec::AvgPool2d {
                kernel_size: options.required(0, "kernel_size")?,
                stride: options.size(1, "stride")?,
            },
            "flatten" => LayerSpec::Flatten,
            "batch_norm1d" | "batch_norm2d" => {
                let eps = options.number(0, "eps")?.unwrap_or(1e-5);
                let momentum = options.number(1, "momentum")?.unwrap_or(0.1);
                if canonical == "batch_norm1d" {
                    LayerSpec::BatchNorm1d { eps, momentum }
                } else {
                    LayerSpec::BatchNorm2d { eps, momentum }
                }
            }
            "dropout" => LayerSpec::Dropout { p: options.number(0, "p")?.unwrap_or(0.5) },
            "relu" => LayerSpec::Relu,
            "leaky_relu" => {
                LayerSpec::LeakyRelu { negative_slope: options.number(0, "negative_slope")?.unwrap_or(0.01) }
            }
            "tanh" => LayerSpec::Tanh,
            "sigmoid" => LayerSpec::Sigmoid,
            "gelu" => LayerSpec::Gelu,
            _ => unreachable!("canonical names are listed above"),
        };
        options.finish()?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks the options that do not depend on the input shape.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = |option: &'static str, v: usize| {
            if v == 0 {
                Err(ConfigError::new(format!("{}.{option}", self.kind()), 0, "at least 1"))
            } else {
                Ok(())
            }
        };
        match self {
            LayerSpec::Linear { out_features: Some(n), .. } => positive("out_features", *n),
            LayerSpec::Conv2d { out_channels, kernel_size, stride, .. } => {
                positive("out_channels", *out_channels)?;
                positive("kernel_size", *kernel_size)?;
                positive("stride", *stride)
            }
            LayerSpec::MaxPool2d { kernel_size, stride } | LayerSpec::AvgPool2d { kernel_size, stride } => {
                positive("kernel_size", *kernel_size)?;
                positive("stride", stride.unwrap_or(1))
            }
            LayerSpec::BatchNorm1d { eps, momentum } | LayerSpec::BatchNorm2d { eps, momentum } => {
                if !(eps.is_finite() && *eps > 0.0) {
                    return Err(ConfigError::new(format!("{}.eps", self.kind()), eps, "a finite number > 0"));
                }
                if !(0.0..=1.0).contains(momentum) {
                    return Err(ConfigError::new(format!("{}.momentum", self.kind()), momentum, "a number in [0, 1]"));
                }
                Ok(())
            }
            LayerSpec::Dropout { p } => {
                if (0.0..1.0).contains(p) {
                    Ok(())
                } else {
                    Err(ConfigError::new("dropout.p", p, "a probability in [0, 1)"))
                }
            }
            LayerSpec::LeakyRelu { negative_slope } => {
                if negative_slope.is_finite() {
                    Ok(())
                } else {
                    Err(ConfigError::new("leaky_relu.negative_slope", negative_slope, "a finite number"))
                }
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for LayerSpec {
    /// The layer as `--layers` writes it (`conv2d(6,5,padding=2)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerSpec::Linear { out_features, bias } => {
                write!(f, "linear")?;
                match (out_features, bias) {
                    (Some(n), true) => write!(f, "({n})"),
                    (Some(n), false) => write!(f, "({n},bias=false)"),
                    (None, true) => Ok(()),
                    (None, false) => write!(f, "(bias=false)"),
                }
            }
            LayerSpec::Conv2d { out_channels, kernel_size, stride, padding } => {
                write!(f, "conv2d({out_channels},{kernel_size}")?;
                if *stride != 1 {
                    write!(f, ",stride={stride}")?;
                }
                if *padding != 0 {
                    write!(f, ",padding={padding}")?;
                }
                write!(f, ")")
            }
            LayerSpec::MaxPool2d { kernel_size, stride } | LayerSpec::AvgPool2d { kernel_size, stride } => {
                write!(f, "{}({kernel_size}", self.kind())?;
                if let Some(s) = stride.filter(|s| s != kernel_size) {
                    write!(f, ",stride={s}")?;
                }
                write!(f, ")")
            }
            LayerSpec::BatchNorm1d { eps, momentum } | LayerSpec::BatchNorm2d { eps, momentum } => {
                write!(f, "{}", self.kind())?;
                if *eps != 1e-5 || *momentum != 0.1 {
                    write!(f, "(eps={eps},momentum={momentum})")?;
                }
                Ok(())
            }
            LayerSpec::Dropout { p } => write!(f, "dropout({p})"),
            LayerSpec::LeakyRelu { negative_slope } if *negative_slope != 0.01 => {
                write!(f, "leaky_relu({negative_slope})")
            }
            other => write!(f, "{}", other.kind()),
        }
    }
}

/// Writes layers as `--layers` takes them.
pub fn format_list(layers: &[LayerSpec]) -> String {
    layers.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// At most 40 characters of user text, for messages.
fn quote(text: &str) -> String {
    let text = text.trim();
    let mut out: String = text.chars().take(40).flat_map(char::escape_debug).collect();
    if text.chars().count() > 40 {
        out.push('…');
    }
    format!("`{out}`")
}

/// The layer's name in snake case, from either spelling (`MaxPool2d`, `max_pool2d`, `ReLU`).
fn canonical_name(name: &str) -> Option<&'static str> {
    let squashed: String = name.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect();
    Some(match squashed.as_str() {
        "linear" | "dense" => "linear",
        "conv2d" => "conv2d",
        "maxpool2d" => "max_pool2d",
        "avgpool2d" => "avg_pool2d",
        "flatten" => "flatten",
        "batchnorm1d" => "batch_norm1d",
        "batchnorm2d" => "batch_norm2d",
        "dropout" => "dropout",
        "relu" => "relu",
        "leakyrelu" => "leaky_relu",
        "tanh" => "tanh",
        "sigmoid" => "sigmoid",
        "gelu" => "gelu",
        _ => return None,
    })
}

/// The options written inside one layer's parentheses.
struct Options<'a> {
    layer: &'static str,
    args: &'a str,
    positional: Vec<&'a str>,
    named: Vec<(&'a str, &'a str)>,
    used: Vec<&'static str>,
}

impl<'a> Options<'a> {
    /// The option at `position`, or named `name`.
    fn raw(&mut self, position: usize, name: &'static str) -> Result<Option<&'a str>, ConfigError> {
        self.used.push(name);
        let by_position = self.positional.get(position).copied();
        let by_name = self.named.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
        if by_position.is_some() && by_name.is_some() {
            return Err(ConfigError::new(format!("{}.{name}", self.layer), self.whole(), "each option given once"));
        }
        Ok(by_position.or(by_name))
    }

    fn whole(&self) -> String {
        format!("{}({})", self.layer, self.args)
    }

    fn count(&mut self, position: usize, name: &'static str) -> Result<Option<usize>, ConfigError> {
        match self.raw(position, name)? {
            None => Ok(None),
            Some(v) => v
                .parse::<usize>()
                .map(Some)
                .map_err(|_| ConfigError::new(format!("{}.{name}", self.layer), quote(v), "a whole number >= 0")),
        }
    }

    fn size(&mut self, position: usize, name: &'static str) -> Result<Option<usize>, ConfigError> {
        match self.count(position, name)? {
            Some(0) => Err(ConfigError::new(format!("{}.{name}", self.layer), 0, "a whole number >= 1")),
            other => Ok(other),
        }
    }

    fn required(&mut self, position: usize, name: &'static str) -> Result<usize, ConfigError> {
        self.size(position, name)?.ok_or_else(|| {
            ConfigError::new(format!("{}.{name}", self.layer), self.whole(), "the option given (it has no default)")
        })
    }

    fn number(&mut self, position: usize, name: &'static str) -> Result<Option<f64>, ConfigError> {
        match self.raw(position, name)? {
            None => Ok(None),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| ConfigError::new(format!("{}.{name}", self.layer), quote(v), "a finite number")),
        }
    }

    fn flag(&mut self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.raw(usize::MAX, name)? {
            None => Ok(None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(ConfigError::new(format!("{}.{name}", self.layer), quote(v), "true or false")),
            },
        }
    }

    /// Fails on options the layer does not take.
    fn finish(&self) -> Result<(), ConfigError> {
        if self.positional.len() > self.used.len() {
            return Err(ConfigError::new(self.layer, self.whole(), "no more positional options than the layer takes"));
        }
        if let Some((k, _)) = self.named.iter().find(|(k, _)| !self.used.contains(k)) {
            return Err(ConfigError::new(format!("{}.{k}", self.layer), self.whole(), "an option the layer takes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lenet() {
        let text = "conv2d(6,5,padding=2),relu,max_pool2d(2),conv2d(16,5),relu,max_pool2d(2),flatten,\
                    linear(120),relu,linear(84),relu,linear(10)";
        let layers = LayerSpec::parse_list(text).unwrap();
        assert_eq!(layers.len(), 12);
        assert_eq!(layers[0], LayerSpec::Conv2d { out_channels: 6, kernel_size: 5, stride: 1, padding: 2 });
        assert_eq!(layers[2], LayerSpec::MaxPool2d { kernel_size: 2, stride: None });
        assert_eq!(layers[11], LayerSpec::Linear { out_features: Some(10), bias: true });
        assert_eq!(format_list(&layers), text);
        assert_eq!(LayerSpec::parse_list(&format_list(&layers)).unwrap(), layers);
    }

    #[test]
    fn accepts_pytorch_spelling_and_named_options() {
        let layers = LayerSpec::parse_list(
            " Conv2d( 8 , 3, stride = 2 ) , ReLU, MaxPool2d(kernel_size=3, stride=2), Dropout(p=0.25), Linear",
        )
        .unwrap();
        assert_eq!(layers[0], LayerSpec::Conv2d { out_channels: 8, kernel_size: 3, stride: 2, padding: 0 });
        assert_eq!(layers[2], LayerSpec::MaxPool2d { kernel_size: 3, stride: Some(2) });
        assert_eq!(layers[3], LayerSpec::Dropout { p: 0.25 });
        assert_eq!(layers[4], LayerSpec::Linear { out_features: None, bias: true });
    }

    #[test]
    fn errors_name_the_layer_and_option() {
        let cases = [
            ("conv2d(6)", "conv2d.kernel_size"),
            ("conv2d(0,3)", "conv2d.out_channels"),
            ("conv2d(6,3,padding=x)", "conv2d.padding"),
            ("conv3d(6,3)", "layers"),
            ("linear(10", "layers"),
            ("linear(10) relu", "layers"),
            ("linear(10,3,4)", "linear"),
            ("linear(size=3)", "linear.size"),
            ("dropout(1.5)", "dropout.p"),
            ("", "layers"),
            ("batch_norm2d(momentum=2)", "batch_norm2d.momentum"),
            ("conv2d(6,5,kernel_size=3)", "conv2d.kernel_size"),
        ];
        for (text, option) in cases {
            let err = LayerSpec::parse_list(text).unwrap_err();
            assert_eq!(err.option, option, "{text}: {err}");
        }
    }

    #[test]
    fn serde_uses_pytorch_names() {
        let spec = LayerSpec::Conv2d { out_channels: 6, kernel_size: 5, stride: 1, padding: 2 };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(json, r#"{"type":"conv2d","out_channels":6,"kernel_size":5,"stride":1,"padding":2}"#);
        let back: LayerSpec = serde_json::from_str(r#"{"type":"conv2d","out_channels":6,"kernel_size":5}"#).unwrap();
        assert_eq!(back, LayerSpec::Conv2d { out_channels: 6, kernel_size: 5, stride: 1, padding: 0 });
        assert!(
            serde_json::from_str::<LayerSpec>(r#"{"type":"conv2d","out_channels":1,"kernel_size":1,"x":1}"#).is_err()
        );
    }
}
