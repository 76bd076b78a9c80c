// Placeholder until this target's code lands; remove it then.
