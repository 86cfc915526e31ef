#pragma once
/// @file
/// Everything of the sandbox-exec-cpp client SDK.

#include "sandbox/command.hpp"        // IWYU pragma: export
#include "sandbox/error.hpp"          // IWYU pragma: export
#include "sandbox/exec_result.hpp"    // IWYU pragma: export
#include "sandbox/exec_stream.hpp"    // IWYU pragma: export
#include "sandbox/log.hpp"            // IWYU pragma: export
#include "sandbox/runner.hpp"         // IWYU pragma: export
#include "sandbox/runner_config.hpp"  // IWYU pragma: export
#include "sandbox/tracing.hpp"        // IWYU pragma: export
#include "sandbox/version.hpp"        // IWYU pragma: export
