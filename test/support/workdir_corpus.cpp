#include "support/workdir_corpus.hpp"

#include <fstream>

namespace sandbox::test {

namespace fs = std::filesystem;

std::vector<std::string> escaping_workdirs(const fs::path& workspace) {
  fs::create_directories(workspace / "sub" / "deep");
  fs::create_directory(workspace.parent_path() / "outside");
  std::ofstream(workspace / "file") << "x";
  fs::create_directory_symlink("/etc", workspace / "to-etc");
  fs::create_directory_symlink("/", workspace / "to-root");
  fs::create_directory_symlink("..", workspace / "up");
  fs::create_directory_symlink("../outside", workspace / "to-sibling");
  fs::create_directory_symlink("../../..", workspace / "sub" / "deep" / "way-up");
  fs::create_directory_symlink("sub", workspace / "to-sub");
  fs::create_directory_symlink(workspace / "sub", workspace / "abs-to-sub");
  fs::create_symlink("loop", workspace / "loop");
  fs::create_symlink("file", workspace / "to-file");
  fs::create_symlink("missing", workspace / "dangling");
  const std::string ws = workspace.string();
  return {
      "..",
      "../",
      "../..",
      "./..",
      "sub/../..",
      "sub/deep/../../..",
      "a/../../b",
      "/",
      "/etc",
      "/tmp",
      "//etc",
      ws + "/..",
      ws + "/../outside",
      ws + "/sub/../../outside",
      ws + "x",  // a sibling whose name starts with the workspace's
      "to-etc",
      "to-etc/",
      "to-etc/ssh",
      "to-root",
      "to-root/etc",
      "up",
      "up/ws",
      "to-sibling",
      "sub/deep/way-up",
      "sub/deep/way-up/etc",
      "abs-to-sub",  // absolute symlinks are refused even when they point inside
      "loop",
      "file",
      "file/",
      "to-file",
      "dangling",
      "missing",
      "sub/missing/deep",
      std::string("sub\0/../..", 10),
      std::string("\0", 1),
      std::string(5000, 'a'),
      std::string(300, 'n'),  // one name longer than NAME_MAX
      "/proc/self/root",
      "/proc/self/cwd",
  };
}

}  // namespace sandbox::test
