#pragma once
// Random exec ids, shared by the SDK (ids it chooses for calls) and the agent (ids it assigns).

#include <string>

namespace sandbox {

/// A random (version 4, RFC 4122) UUID in canonical lowercase 36-character form.
/// Thread-safe: each thread draws from its own generator, seeded from std::random_device.
std::string random_uuid();

}  // namespace sandbox
