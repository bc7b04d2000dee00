//! The `priority` policy: puts each message in one of the four dispatch classes (critical,
//! high, normal, bulk) from its category and tags, so the queue order follows the business
//! rules rather than whatever the caller sent. By default authentication is critical,
//! marketing bulk, utility and service normal, and the tags `customs` and `payment` make a
//! message high. A matching tag rule wins over the category rule; among several matching
//! tags the highest class wins. Every rule is overridable in the config.
//!
//! The class is set in `on-submit` (a rewrite with only the priority changed), before the
//! host queues the message by it. This file owns the classification ([`classify`], pure) and
//! the policy around it; [`config`] owns the config. Calls only `wasp-sdk`.

pub mod config;

use wasp_sdk::{Category, Context, Message, Policy, Priority, Verdict, counter_add, log};

pub use config::Config;

/// The class a message with `category` and `tags` belongs to under `config`.
pub fn classify(config: &Config, category: Category, tags: &[String]) -> Priority {
    tags.iter()
        .filter_map(|tag| config.tags.get(tag).copied())
        .max_by_key(|class| rank(*class))
        .unwrap_or_else(|| config.categories.get(category))
}

/// Orders the classes: bulk 0 up to critical 3.
pub fn rank(class: Priority) -> u8 {
    match class {
        Priority::Bulk => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Critical => 3,
    }
}

/// The contract's name of a class, for log lines.
pub fn class_name(class: Priority) -> &'static str {
    match class {
        Priority::Critical => "critical",
        Priority::High => "high",
        Priority::Normal => "normal",
        Priority::Bulk => "bulk",
    }
}

/// The policy: [`classify`] on submit; a rewrite when the class differs from the message's.
pub struct PriorityPolicy {
    config: Config,
}

impl Policy for PriorityPolicy {
    fn init(config: &str) -> Result<Self, String> {
        Ok(PriorityPolicy {
            config: Config::parse(config)?,
        })
    }

    fn on_submit(&self, message: Message, _context: &Context) -> Verdict {
        let class = classify(&self.config, message.category, &message.tags);
        if class == message.priority {
            return Verdict::Allow;
        }
        let raised = rank(class) > rank(message.priority);
        log::debug(&format!(
            "message {}: priority {} becomes {}",
            message.id,
            class_name(message.priority),
            class_name(class)
        ));
        counter_add(if raised { "raised" } else { "lowered" }, 1);
        Verdict::Rewrite(Message {
            priority: class,
            ..message
        })
    }
}

wasp_sdk::export_policy!(PriorityPolicy);

#[cfg(test)]
mod tests;
