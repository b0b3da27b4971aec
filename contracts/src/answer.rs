//! The JSON body of every error answer over HTTP, gateway and connectors alike: `{"error": "..."}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An error answer's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What was wrong, naming the field, parameter or object.
    pub error: String,
}
