// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! The names MCM v0.62.1 writes into a Machine's status (phase, lastOperation
//! state and type), as closed sets that still keep a name they do not know: a
//! newer MCM may write one, and a status we write back must not lose it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares enums of known names plus `Other(String)`, each with its text, serde
/// as that plain text, and the conversions from and to `String`.
macro_rules! known_names {
    ($(
        $(#[$doc:meta])*
        $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }
    )+) => {$(
        $(#[$doc])*
        ///
        /// Build it from text with `From`, which never puts a known name into
        /// `Other`, so that `==` and `match` by variant see every known name.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
            /// A name this build does not know (a newer MCM's), kept as read.
            Other(String),
        }

        impl $name {
            /// Every name this build knows.
            pub const KNOWN: &[Self] = &[$(Self::$variant),+];

            /// The text MCM writes.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                match s.as_str() {
                    $($text => Self::$variant,)+
                    _ => Self::Other(s),
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                match v {
                    $name::Other(s) => s,
                    known => known.as_str().to_string(),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::from)
            }
        }
    )+};
}

known_names! {
    /// `status.currentStatus.phase`.
    Phase {
        Pending = "Pending",
        Available = "Available",
        Running = "Running",
        Terminating = "Terminating",
        Unknown = "Unknown",
        Failed = "Failed",
        CrashLoopBackOff = "CrashLoopBackOff",
        InPlaceUpdating = "InPlaceUpdating",
        InPlaceUpdateSuccessful = "InPlaceUpdateSuccessful",
        InPlaceUpdateFailed = "InPlaceUpdateFailed",
    }

    /// `status.lastOperation.state`.
    OpState {
        Processing = "Processing",
        Failed = "Failed",
        Successful = "Successful",
    }

    /// `status.lastOperation.type`.
    OpType {
        Create = "Create",
        HealthCheck = "HealthCheck",
        Delete = "Delete",
        Update = "Update",
        InPlaceUpdate = "InPlaceUpdate",
        DrainNode = "DrainNode",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through serde_json and back: the same text on the wire, the same value.
    fn round_trip<T>(value: &T, text: &str)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + fmt::Debug,
    {
        let json = serde_json::to_value(value).unwrap();
        assert_eq!(json, serde_json::Value::String(text.to_string()));
        assert_eq!(&serde_json::from_value::<T>(json).unwrap(), value);
    }

    #[test]
    fn every_known_name_round_trips_as_its_text() {
        for p in Phase::KNOWN {
            round_trip(p, p.as_str());
            assert_eq!(&Phase::from(p.as_str()), p);
            assert!(!matches!(p, Phase::Other(_)));
        }
        for s in OpState::KNOWN {
            round_trip(s, s.as_str());
            assert_eq!(&OpState::from(s.as_str()), s);
        }
        for t in OpType::KNOWN {
            round_trip(t, t.as_str());
            assert_eq!(&OpType::from(t.as_str()), t);
        }
        assert_eq!(Phase::KNOWN.len(), 10);
        assert_eq!(OpState::KNOWN.len(), 3);
        assert_eq!(OpType::KNOWN.len(), 6);
    }

    #[test]
    fn the_wire_names_are_mcms() {
        let phase: Phase = serde_json::from_str("\"CrashLoopBackOff\"").unwrap();
        assert_eq!(phase, Phase::CrashLoopBackOff);
        assert_eq!(
            Phase::InPlaceUpdateSuccessful.to_string(),
            "InPlaceUpdateSuccessful"
        );
        assert_eq!(String::from(OpType::HealthCheck), "HealthCheck");
        assert_eq!(OpState::from("Successful"), OpState::Successful);
    }

    #[test]
    fn an_unknown_name_is_kept_exactly() {
        let phase = Phase::from("Hibernating");
        assert_eq!(phase, Phase::Other("Hibernating".into()));
        round_trip(&phase, "Hibernating");
        assert_eq!(String::from(phase), "Hibernating");
        // Case matters on the wire: MCM's names are compared exactly.
        assert_eq!(Phase::from("running"), Phase::Other("running".into()));
        round_trip(&OpState::from("Paused"), "Paused");
        round_trip(&OpType::from("Rebuild"), "Rebuild");
        assert_eq!(OpType::from("Rebuild").to_string(), "Rebuild");
    }
}
