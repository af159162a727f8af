//! Parameters live in one flat `f32` buffer split into named segments (a layer's weights, its
//! bias, ...); gradients live in a buffer of the same shape.
//!
//! A flat buffer lets every optimizer run one tight, vectorizable loop over all parameters and
//! split it across threads at fixed boundaries. Parameter groups give some segments their own
//! learning-rate factor and weight decay (the common case: no weight decay on biases).

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// A named, contiguous part of the flat parameter buffer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The segment's name, unique in its layout (e.g. `layer0.weight`).
    pub name: String,
    /// Where it starts in the flat buffer.
    pub offset: usize,
    /// How many parameters it holds (may be zero).
    pub len: usize,
}

impl Segment {
    /// The segment's range in the flat buffer.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// The layout of a flat parameter buffer: named segments laid end to end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamLayout {
    segments: Vec<Segment>,
    len: usize,
}

impl ParamLayout {
    /// An empty layout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a segment of `len` parameters named `name` and returns its range.
    ///
    /// # Panics
    /// If a segment of that name already exists, or the total length overflows `usize`: layouts
    /// are built by model code, not users, so a duplicate is a programming error, and model code
    /// checks sizes that come from data before it lays them out (with checked arithmetic).
    pub fn push(&mut self, name: impl Into<String>, len: usize) -> Range<usize> {
        let name = name.into();
        assert!(self.segment(&name).is_none(), "duplicate parameter segment `{name}`");
        let offset = self.len;
        let end = offset.checked_add(len).expect("the parameter count overflows usize");
        self.segments.push(Segment { name, offset, len });
        self.len = end;
        offset..end
    }

    /// The total number of parameters.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the layout holds no parameters.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments, in buffer order.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The segment named `name`.
    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// A zeroed buffer of this layout's length (on huge pages when large, see [`crate::buffer`]).
    pub fn zeros(&self) -> Vec<f32> {
        crate::buffer::filled(self.len, 0.0)
    }
}

/// Options a parameter group overrides, as PyTorch's `param_groups` do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    /// Names of the segments in the group.
    pub segments: Vec<String>,
    /// The group's learning rate is `lr_scale` times the optimizer's current learning rate, so a
    /// schedule scales every group alike.
    pub lr_scale: f64,
    /// The group's weight decay, replacing the optimizer's own when set.
    pub weight_decay: Option<f64>,
}

impl ParamGroup {
    /// A group of `segments` with the optimizer's own options.
    pub fn new<S: Into<String>>(segments: impl IntoIterator<Item = S>) -> Self {
        Self { segments: segments.into_iter().map(Into::into).collect(), lr_scale: 1.0, weight_decay: None }
    }

    /// Sets the group's learning-rate factor.
    pub fn lr_scale(mut self, lr_scale: f64) -> Self {
        self.lr_scale = lr_scale;
        self
    }

    /// Sets the group's weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = Some(weight_decay);
        self
    }
}

/// One run of the flat buffer that shares its options: what an optimizer's step iterates over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRun {
    /// The run's range in the flat buffer.
    pub range: Range<usize>,
    /// Learning-rate factor of the run's group.
    pub lr_scale: f64,
    /// Weight decay override of the run's group.
    pub weight_decay: Option<f64>,
}

/// Parameter groups resolved against a layout into runs of the flat buffer.
///
/// Segments named by no group take the optimizer's own options. Adjacent segments with equal
/// options are merged into one run, so the common case is a handful of long runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamGroups {
    runs: Vec<GroupRun>,
    len: usize,
}

impl ParamGroups {
    /// One group holding all `len` parameters with the optimizer's own options.
    pub fn single(len: usize) -> Self {
        Self { runs: vec![GroupRun { range: 0..len, lr_scale: 1.0, weight_decay: None }], len }
    }

    /// Resolves `groups` against `layout`. Fails when a group names an unknown segment, a segment
    /// belongs to two groups, or a group's `lr_scale` or `weight_decay` is negative or not finite.
    pub fn new(layout: &ParamLayout, groups: &[ParamGroup]) -> Result<Self, ConfigError> {
        let mut owner: Vec<Option<usize>> = vec![None; layout.segments().len()];
        for (gi, group) in groups.iter().enumerate() {
            crate::error::non_negative("lr_scale", group.lr_scale)?;
            if let Some(wd) = group.weight_decay {
                crate::error::non_negative("weight_decay", wd)?;
            }
            for name in &group.segments {
                let si = layout
                    .segments()
                    .iter()
                    .position(|s| &s.name == name)
                    .ok_or_else(|| ConfigError::new("param_groups", name, "the name of a parameter segment"))?;
                if owner[si].is_some() {
                    return Err(ConfigError::new("param_groups", name, "each segment in at most one group"));
                }
                owner[si] = Some(gi);
            }
        }
        let mut runs: Vec<GroupRun> = Vec::new();
        for (segment, group) in layout.segments().iter().zip(&owner) {
            let (lr_scale, weight_decay) = match group {
                Some(gi) => (groups[*gi].lr_scale, groups[*gi].weight_decay),
                None => (1.0, None),
            };
            match runs.last_mut() {
                Some(last) if last.lr_scale == lr_scale && last.weight_decay == weight_decay => {
                    last.range.end = segment.offset + segment.len;
                }
                _ => runs.push(GroupRun { range: segment.range(), lr_scale, weight_decay }),
            }
        }
        Ok(Self { runs, len: layout.len() })
    }

    /// The runs, in buffer order; together they cover the buffer exactly.
    pub fn runs(&self) -> &[GroupRun] {
        &self.runs
    }

    /// The number of parameters covered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no parameters are covered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
