//! The requests the apiserver refuses ([`ApiError`]) and the Kubernetes `Status` each becomes.

use serde_json::{Value, json};

use super::Res;

/// A request the apiserver refuses; each maps onto a Kubernetes `Status` (reason and code).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{} \"{name}\" not found", .res.group_resource())]
    NotFound { res: Res, name: String },
    #[error("{} \"{name}\" already exists", .res.group_resource())]
    AlreadyExists { res: Res, name: String },
    #[error(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
        .res.group_resource()
    )]
    Conflict { res: Res, name: String },
    /// Server-side apply of fields other managers own, with other values, without `force`.
    #[error("Apply failed with {} conflict{}: {}", .conflicts.len(), if .conflicts.len() == 1 { "" } else { "s" },
            .conflicts.iter().map(|c| format!("conflict with \"{}\" using {}: {}", c.manager, c.api_version, c.field)).collect::<Vec<_>>().join("\n"))]
    ApplyConflict {
        res: Res,
        name: String,
        conflicts: Vec<FieldConflict>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{}{} \"{name}\" is invalid: {message}", .res.meta().kind, group_suffix(.res))]
    Invalid {
        res: Res,
        name: String,
        message: String,
    },
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Refused by a ValidatingAdmissionPolicy, worded as kube-apiserver words it; `reason` is
    /// the validation's (`Forbidden` unless it says otherwise) and sets the code.
    #[error("{}{} \"{name}\" is forbidden: ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}", .res.meta().plural, group_suffix(.res))]
    Denied {
        res: Res,
        name: String,
        policy: String,
        binding: String,
        message: String,
        reason: &'static str,
    },
    #[error("the server could not find the requested resource")]
    NoRoute,
}

fn group_suffix(res: &Res) -> String {
    let g = res.meta().group;
    if g.is_empty() {
        String::new()
    } else {
        format!(".{g}")
    }
}

impl ApiError {
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => 404,
            ApiError::AlreadyExists { .. }
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => 409,
            ApiError::BadRequest(_) => 400,
            ApiError::Invalid { .. } => 422,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Denied { reason, .. } => match *reason {
                "Unauthorized" => 401,
                "RequestEntityTooLarge" => 413,
                "Invalid" => 422,
                _ => 403,
            },
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Denied { reason, .. } => reason,
        }
    }

    /// The `Status` body kube-rs parses into `kube::Error::Api`.
    pub fn status_json(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.to_string(), "reason": self.reason(), "code": self.code(),
        });
        let details = match self {
            ApiError::NotFound { res, name }
            | ApiError::AlreadyExists { res, name }
            | ApiError::Conflict { res, name }
            | ApiError::Denied { res, name, .. } => {
                Some(json!({"name": name, "group": res.meta().group, "kind": res.meta().plural}))
            }
            // The field at fault as a cause, which is what kubectl prints after "is invalid: ".
            ApiError::Invalid { res, name, message } => {
                let (field, text) = message.split_once(": ").unwrap_or(("", message));
                let reason = match text.split(':').next().unwrap_or_default() {
                    "Required value" => "FieldValueRequired",
                    "Forbidden" => "FieldValueForbidden",
                    "Unsupported value" => "FieldValueNotSupported",
                    _ => "FieldValueInvalid",
                };
                Some(
                    json!({"name": name, "group": res.meta().group, "kind": res.meta().kind,
                            "causes": [{"reason": reason, "message": text, "field": field}]}),
                )
            }
            ApiError::ApplyConflict {
                res,
                name,
                conflicts,
            } => Some(json!({
                "name": name, "group": res.meta().group, "kind": res.meta().plural,
                "causes": conflicts.iter().map(|c| json!({
                    "reason": "FieldManagerConflict",
                    "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                    "field": c.field,
                })).collect::<Vec<_>>(),
            })),
            _ => None,
        };
        if let Some(d) = details {
            status["details"] = d;
        }
        status
    }
}

/// A field another manager owns with another value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldConflict {
    pub manager: String,
    pub api_version: String,
    /// `.spec.replicas`
    pub field: String,
}
