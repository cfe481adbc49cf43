#define BOOST_TEST_MODULE staging_beneath
#include <boost/test/unit_test.hpp>

#include <sluice/common/error.hpp>
#include <sluice/staging/beneath.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::staging;
using detail::Resolver;

namespace {

// A destination root and, beside it, a directory an attacker would like us to write into.
struct Sandbox {
  fs::path dir, root, outside;
  UniqueFd root_fd;
  Sandbox() {
    char tmpl[] = "/tmp/sluice-beneath-test-XXXXXX";
    dir = ::mkdtemp(tmpl);
    root = dir / "bb";
    outside = dir / "outside";
    fs::create_directories(root);
    fs::create_directories(outside);
    root_fd = open_root(root.string(), false);
  }
  ~Sandbox() { fs::remove_all(dir); }
};

const Resolver kResolvers[] = {Resolver::Auto, Resolver::Walk};

}  // namespace

BOOST_AUTO_TEST_CASE(creates_files_beneath_the_root) {
  Sandbox s;
  fs::create_directories(s.root / "a/b");
  for (Resolver r : kResolvers) {
    const std::string name = r == Resolver::Auto ? "a/b/f1" : "a/b/f2";
    UniqueFd fd = detail::open_beneath(s.root_fd.get(), name, O_WRONLY | O_CREAT | O_EXCL, 0600, r);
    BOOST_TEST(fd.get() >= 0);
    BOOST_TEST(fs::exists(s.root / name));
  }
  UniqueFd self = open_beneath(s.root_fd.get(), ".", O_RDONLY | O_DIRECTORY);
  BOOST_TEST(fd_path(self.get()) == s.root.string());
}

BOOST_AUTO_TEST_CASE(a_planted_directory_symlink_does_not_redirect_a_write) {
  Sandbox s;
  fs::create_directory_symlink(s.outside, s.root / "data");
  for (Resolver r : kResolvers) {
    BOOST_CHECK_THROW(detail::open_beneath(s.root_fd.get(), "data/evil", O_WRONLY | O_CREAT, 0600, r), SystemError);
  }
  BOOST_TEST(fs::is_empty(s.outside));
  BOOST_CHECK_THROW(make_dirs_beneath(s.root_fd.get(), "data/sub", 0700), SystemError);
  BOOST_TEST(fs::is_empty(s.outside));
}

BOOST_AUTO_TEST_CASE(a_planted_file_symlink_is_not_followed) {
  Sandbox s;
  { std::ofstream(s.outside / "victim") << "precious"; }
  fs::create_symlink(s.outside / "victim", s.root / "model.ckpt");
  for (Resolver r : kResolvers) {
    BOOST_CHECK_THROW(detail::open_beneath(s.root_fd.get(), "model.ckpt", O_WRONLY | O_TRUNC, 0, r), SystemError);
    BOOST_CHECK_THROW(detail::open_beneath(s.root_fd.get(), "model.ckpt", O_WRONLY | O_CREAT, 0600, r), SystemError);
  }
  std::ifstream in(s.outside / "victim");
  std::string content;
  in >> content;
  BOOST_TEST(content == "precious");
}

BOOST_AUTO_TEST_CASE(symlinks_to_inside_the_root_are_refused_too) {
  // Even a harmless-looking link is refused: no symlink is ever resolved under the root.
  Sandbox s;
  fs::create_directories(s.root / "real");
  fs::create_directory_symlink("real", s.root / "alias");
  for (Resolver r : kResolvers)
    BOOST_CHECK_THROW(detail::open_beneath(s.root_fd.get(), "alias/f", O_WRONLY | O_CREAT, 0600, r), SystemError);
}

BOOST_AUTO_TEST_CASE(dotdot_and_absolute_paths_are_refused) {
  Sandbox s;
  for (Resolver r : kResolvers) {
    BOOST_CHECK_THROW(detail::open_beneath(s.root_fd.get(), "../outside/f", O_WRONLY | O_CREAT, 0600, r), InvalidArgument);
    BOOST_CHECK_THROW(detail::open_beneath(s.root_fd.get(), "a/..", O_RDONLY, 0, r), InvalidArgument);
    BOOST_CHECK_THROW(detail::open_beneath(s.root_fd.get(), (s.outside / "f").string(), O_WRONLY | O_CREAT, 0600, r),
                      InvalidArgument);
  }
  BOOST_TEST(fs::is_empty(s.outside));
}

BOOST_AUTO_TEST_CASE(errors_name_the_path) {
  Sandbox s;
  try {
    open_beneath(s.root_fd.get(), "missing/file", O_RDONLY);
    BOOST_ERROR("opened a missing file");
  } catch (const SystemError& e) {
    BOOST_TEST(e.code() == ENOENT);
    BOOST_TEST(std::string(e.what()).find((s.root / "missing/file").string()) != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(make_dirs_creates_the_chain_with_the_mode) {
  Sandbox s;
  UniqueFd d = make_dirs_beneath(s.root_fd.get(), "x/y/z", 0700);
  BOOST_TEST(fs::is_directory(s.root / "x/y/z"));
  BOOST_TEST(fd_path(d.get()) == (s.root / "x/y/z").string());
  struct stat st {};
  BOOST_REQUIRE(::stat((s.root / "x/y").c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 07777) == 0700u);
  UniqueFd again = make_dirs_beneath(s.root_fd.get(), "x/y/z", 0700);  // idempotent
  BOOST_TEST(again.get() >= 0);
}

BOOST_AUTO_TEST_CASE(temp_files_vanish_unless_committed) {
  Sandbox s;
  std::string temp;
  {
    TempFile t(open_beneath(s.root_fd.get(), ".", O_RDONLY | O_DIRECTORY), "data.bin", 0600);
    temp = t.temp_name();
    BOOST_TEST(is_temp_name(temp));
    BOOST_TEST(fs::exists(s.root / temp));
  }
  BOOST_TEST(!fs::exists(s.root / temp));
  BOOST_TEST(fs::is_empty(s.root));
  BOOST_TEST(!is_temp_name("data.bin"));
  BOOST_TEST(!is_temp_name(".data.bin.sluice-tmp.abc"));
}

BOOST_AUTO_TEST_CASE(commit_without_replace_never_clobbers) {
  Sandbox s;
  { std::ofstream(s.root / "taken") << "theirs"; }
  TempFile t(open_beneath(s.root_fd.get(), ".", O_RDONLY | O_DIRECTORY), "taken", 0600);
  try {
    t.commit(false);
    BOOST_ERROR("clobbered an existing file");
  } catch (const SystemError& e) {
    BOOST_TEST(e.code() == EEXIST);
  }
  std::ifstream in(s.root / "taken");
  std::string content;
  in >> content;
  BOOST_TEST(content == "theirs");

  // Replacing a planted symlink replaces the link itself; its target is untouched.
  { std::ofstream(s.outside / "victim") << "precious"; }
  fs::create_symlink(s.outside / "victim", s.root / "link");
  TempFile u(open_beneath(s.root_fd.get(), ".", O_RDONLY | O_DIRECTORY), "link", 0600);
  u.commit(true);
  BOOST_TEST(!fs::is_symlink(s.root / "link"));
  BOOST_TEST(fs::file_size(s.outside / "victim") == 8u);
}

BOOST_AUTO_TEST_CASE(long_names_get_temp_names_within_name_max) {
  Sandbox s;
  TempFile t(open_beneath(s.root_fd.get(), ".", O_RDONLY | O_DIRECTORY), std::string(255, 'n'), 0600);
  BOOST_TEST(t.temp_name().size() <= 255u);
  BOOST_TEST(is_temp_name(t.temp_name()));
}
