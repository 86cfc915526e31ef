// Workdirs that must never resolve: shared by the resolver's unit test and the agent's.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace sandbox::test {

/// Populates `workspace` (canonical, absolute, with an `outside` sibling directory next to
/// it) with the symlinks and files the corpus refers to, and returns the corpus: `..`
/// escapes, absolute paths outside, symlinks out (absolute and relative), loops, files,
/// missing paths, NUL bytes, over-long paths and names. At least 30 entries.
std::vector<std::string> escaping_workdirs(const std::filesystem::path& workspace);

}  // namespace sandbox::test
