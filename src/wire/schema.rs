//! JSON Schema (feature `schema`) for the types whose JSON form is written
//! by hand: each hands on to its wire struct, or says what it writes.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

use super::{CwdJson, ProcessInfoJson};
use crate::{BootId, Cwd, Pid, ProcessInfo, State};

impl JsonSchema for Pid {
    fn schema_name() -> Cow<'static, str> {
        "Pid".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A process id: a whole number from 1 to 2147483647.",
            "type": "integer",
            "minimum": 1,
            "maximum": i32::MAX,
        })
    }
}

impl JsonSchema for BootId {
    fn schema_name() -> Cow<'static, str> {
        "BootId".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The kernel's random id of a boot, as /proc/sys/kernel/random/boot_id shows it.",
            "type": "string",
            "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        })
    }
}

impl JsonSchema for State {
    fn schema_name() -> Cow<'static, str> {
        "State".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "The scheduler state as a word; a state letter this version does not know is that letter.",
            "anyOf": [
                {
                    "type": "string",
                    "enum": [
                        "running", "sleeping", "disk_sleep", "stopped", "tracing_stop",
                        "zombie", "dead", "idle", "parked", "waking",
                    ],
                },
                { "type": "string", "minLength": 1, "maxLength": 1 },
            ],
        })
    }
}

impl JsonSchema for crate::signal::Signal {
    fn schema_name() -> Cow<'static, str> {
        "Signal".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = crate::signal::Signal::ALL
            .iter()
            .map(|s| s.name())
            .collect();
        json_schema!({
            "description": "A signal by its conventional name.",
            "type": "string",
            "enum": names,
        })
    }
}

impl JsonSchema for Cwd {
    fn schema_name() -> Cow<'static, str> {
        "Cwd".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        CwdJson::json_schema(generator)
    }
}

impl JsonSchema for ProcessInfo {
    fn schema_name() -> Cow<'static, str> {
        "ProcessInfo".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        ProcessInfoJson::json_schema(generator)
    }
}

impl JsonSchema for crate::supervisor::JobStatus {
    fn schema_name() -> Cow<'static, str> {
        "JobStatus".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        super::jobs::JobStatusJson::json_schema(generator)
    }
}

#[cfg(feature = "registry")]
impl JsonSchema for crate::registry::Entry {
    fn schema_name() -> Cow<'static, str> {
        "Entry".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        super::registry::EntryJson::json_schema(generator)
    }
}
