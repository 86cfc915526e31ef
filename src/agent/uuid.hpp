// Random exec ids.
#pragma once

#include <string>

namespace sandbox::agent {

/// A random (version 4) UUID in canonical lowercase form, 36 characters. Thread-safe.
std::string make_uuid_v4();

}  // namespace sandbox::agent
