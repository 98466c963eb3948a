//! Component names: where in a layer an intervention can act (pyvene's names).

use std::fmt;
use std::str::FromStr;

use crate::HookError;

/// A place inside one transformer layer, named as pyvene names it.
///
/// Head components (`head_*`) are views of their non-head component split into heads;
/// models only ever call hooks at non-head components (see [`Component::tap`]).
///
/// ```
/// use vene_hooks::Component;
/// let c: Component = "head_query_output".parse().unwrap();
/// assert_eq!(c.tap(), Component::QueryOutput);
/// assert!(c.is_head());
/// assert_eq!(c.to_string(), "head_query_output");
/// assert!("block_outptu".parse::<Component>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// Residual stream entering the block.
    BlockInput,
    /// Residual stream leaving the block.
    BlockOutput,
    /// Input of the attention module (after the first layer norm).
    AttentionInput,
    /// Output of the attention module (after the output projection).
    AttentionOutput,
    /// Input of the attention output projection: all heads concatenated.
    AttentionValueOutput,
    /// One head of [`Component::AttentionValueOutput`].
    HeadAttentionValueOutput,
    /// Query projection output.
    QueryOutput,
    /// Key projection output.
    KeyOutput,
    /// Value projection output.
    ValueOutput,
    /// One head of [`Component::QueryOutput`].
    HeadQueryOutput,
    /// One head of [`Component::KeyOutput`].
    HeadKeyOutput,
    /// One head of [`Component::ValueOutput`].
    HeadValueOutput,
    /// Input of the MLP (after the second layer norm).
    MlpInput,
    /// Output of the MLP.
    MlpOutput,
    /// Output of the MLP's activation function (width d_ff).
    MlpActivation,
    /// Attention probabilities `[batch, heads, query, key]`.
    AttentionWeight,
    /// The residual stream between the attention and the MLP (`block_input` plus the
    /// attention's contribution): TransformerLens's `hook_resid_mid`, where many public SAEs are
    /// trained. A vene extension (pyvene has no such component); models with parallel attention
    /// and MLP (GPT-NeoX, GPT-J) have no such point and refuse it.
    ResidMid,
}

impl Component {
    /// Every component, in the order of the table in the reference.
    pub const ALL: [Component; 16] = [
        Component::BlockInput,
        Component::BlockOutput,
        Component::AttentionInput,
        Component::AttentionOutput,
        Component::AttentionValueOutput,
        Component::HeadAttentionValueOutput,
        Component::QueryOutput,
        Component::KeyOutput,
        Component::ValueOutput,
        Component::HeadQueryOutput,
        Component::HeadKeyOutput,
        Component::HeadValueOutput,
        Component::MlpInput,
        Component::MlpOutput,
        Component::MlpActivation,
        Component::AttentionWeight,
    ];

    /// Components vene adds to pyvene's (not in [`Component::ALL`], which is pyvene's table):
    /// [`Component::ResidMid`].
    pub const EXTENSIONS: [Component; 1] = [Component::ResidMid];

    /// pyvene's name of the component (vene's for [`Component::EXTENSIONS`]).
    pub fn as_str(self) -> &'static str {
        match self {
            Component::BlockInput => "block_input",
            Component::BlockOutput => "block_output",
            Component::AttentionInput => "attention_input",
            Component::AttentionOutput => "attention_output",
            Component::AttentionValueOutput => "attention_value_output",
            Component::HeadAttentionValueOutput => "head_attention_value_output",
            Component::QueryOutput => "query_output",
            Component::KeyOutput => "key_output",
            Component::ValueOutput => "value_output",
            Component::HeadQueryOutput => "head_query_output",
            Component::HeadKeyOutput => "head_key_output",
            Component::HeadValueOutput => "head_value_output",
            Component::MlpInput => "mlp_input",
            Component::MlpOutput => "mlp_output",
            Component::MlpActivation => "mlp_activation",
            Component::AttentionWeight => "attention_weight",
            Component::ResidMid => "resid_mid",
        }
    }

    /// Whether this is a per-head view (`head_*`).
    pub fn is_head(self) -> bool {
        matches!(
            self,
            Component::HeadAttentionValueOutput
                | Component::HeadQueryOutput
                | Component::HeadKeyOutput
                | Component::HeadValueOutput
        )
    }

    /// The component the model actually calls a hook at: a head component maps to the
    /// component it is a view of, every other component to itself.
    pub fn tap(self) -> Component {
        match self {
            Component::HeadAttentionValueOutput => Component::AttentionValueOutput,
            Component::HeadQueryOutput => Component::QueryOutput,
            Component::HeadKeyOutput => Component::KeyOutput,
            Component::HeadValueOutput => Component::ValueOutput,
            other => other,
        }
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Component {
    type Err = HookError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let every = || Component::ALL.iter().chain(&Component::EXTENSIONS).copied();
        every()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| HookError::UnknownComponent {
                name: s.to_string(),
                valid: every().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
            })
    }
}

impl serde::Serialize for Component {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Component {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An intervention point: a component of one layer.
///
/// ```
/// use vene_hooks::{Component, Site};
/// let site = Site::new(1, Component::BlockOutput);
/// assert_eq!(site.to_string(), "layer 1 block_output");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Site {
    /// Layer index, from 0.
    pub layer: usize,
    /// Component within the layer.
    pub component: Component,
}

impl Site {
    /// A site at `layer`, `component`.
    pub fn new(layer: usize, component: Component) -> Self {
        Self { layer, component }
    }

    /// The site that reads the same activations, named one way: `block_input` of layer
    /// l > 0 is `block_output` of layer l - 1; every other site is itself.
    ///
    /// ```
    /// use vene_hooks::{Component, Site};
    /// let pre = Site::new(3, Component::BlockInput);
    /// assert_eq!(pre.canonical(), Site::new(2, Component::BlockOutput));
    /// assert_eq!(Site::new(0, Component::BlockInput).canonical(), Site::new(0, Component::BlockInput));
    /// ```
    pub fn canonical(self) -> Site {
        match self.component {
            Component::BlockInput if self.layer > 0 => {
                Site::new(self.layer - 1, Component::BlockOutput)
            }
            _ => self,
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "layer {} {}", self.layer, self.component)
    }
}
