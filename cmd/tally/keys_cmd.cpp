// `tally keys`: make API keys. Prints a fresh random token once and the [[keys]] entry to put in
// tallyd's keys file (which stores only the token's SHA-256).
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "commands.h"
#include "common/json_writer.h"
#include "common/sha256.h"
#include "http/auth.h"

namespace tally::cli {
namespace {

// TOML basic strings share JSON's escaping for everything we emit.
std::string Quote(const std::string& s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

}  // namespace

Command AddKeysCommand(CLI::App& app) {
  CLI::App* keys = app.add_subcommand(
      "keys",
      "Make API keys for tallyd.\n\n"
      "Examples:\n"
      "  tally keys new --name acme-dashboard --user-id 42 \\\n"
      "      --workspace 8360bf61-4604-4f22-99dc-2afa910fd8c7=owner --org org_7 \\\n"
      "      --append config/keys.toml\n"
      "  tally keys hash my-token    # the sha256 to store for an existing token");
  keys->require_subcommand(1);

  struct NewArgs {
    std::string name, user_id, append;
    std::vector<std::string> workspaces, organizations;
    bool admin = false;
  };
  auto args = std::make_shared<NewArgs>();
  CLI::App* make = keys->add_subcommand("new", "Generate a token and its keys-file entry");
  make->add_option("--name", args->name, "Unique key name, e.g. acme-dashboard")->required();
  make->add_option("--user-id", args->user_id, "User the key acts for");
  make->add_option("--workspace", args->workspaces,
                   "WORKSPACE_ID=owner|member (repeatable); owner is needed for metrics");
  make->add_option("--org", args->organizations,
                   "Organization id for request analytics (repeatable)");
  make->add_flag("--admin", args->admin, "Every workspace and organization");
  make->add_option("--append", args->append,
                   "Append the entry to this keys file (validated after writing)");

  auto token_to_hash = std::make_shared<std::string>();
  CLI::App* hash = keys->add_subcommand("hash", "Print the SHA-256 of a token");
  hash->add_option("token", *token_to_hash, "The token")->required();

  return {
      keys, [keys, make, hash, args, token_to_hash]() -> int {
        if (hash->parsed()) {
          std::printf("%s\n", Sha256Hex(*token_to_hash).c_str());
          return 0;
        }
        (void)make;
        std::string token = "tly_" + RandomHex(24);
        std::string entry =
            "\n[[keys]]\nname = " + Quote(args->name) + "\nsha256 = \"" + Sha256Hex(token) + "\"\n";
        if (!args->user_id.empty()) entry += "user_id = " + Quote(args->user_id) + "\n";
        if (!args->workspaces.empty()) {
          entry += "workspaces = { ";
          for (size_t i = 0; i < args->workspaces.size(); ++i) {
            const std::string& w = args->workspaces[i];
            auto eq = w.rfind('=');
            std::string id = eq == std::string::npos ? w : w.substr(0, eq);
            std::string role = eq == std::string::npos ? "member" : w.substr(eq + 1);
            if (role != "owner" && role != "member") {
              std::fprintf(stderr,
                           "tally keys: --workspace %s: role must be owner or member, e.g. "
                           "--workspace %s=owner\n",
                           w.c_str(), id.c_str());
              return 2;
            }
            entry += (i ? ", " : "") + Quote(id) + " = \"" + role + "\"";
          }
          entry += " }\n";
        }
        if (!args->organizations.empty()) {
          entry += "organizations = [";
          for (size_t i = 0; i < args->organizations.size(); ++i) {
            entry += (i ? ", " : "") + Quote(args->organizations[i]);
          }
          entry += "]\n";
        }
        entry += std::string("admin = ") + (args->admin ? "true" : "false") + "\n";
        if (!args->append.empty()) {
          {
            std::ofstream out(args->append, std::ios::app);
            out << entry;
            if (!out) {
              std::fprintf(stderr, "tally keys: cannot write %s\n", args->append.c_str());
              return 1;
            }
          }
          auto loaded = http::KeyStore::LoadFile(args->append);
          if (!loaded) {
            std::fprintf(stderr, "tally keys: %s is no longer valid after appending: %s\n",
                         args->append.c_str(), loaded.error().message.c_str());
            return 1;
          }
          std::fprintf(stderr, "appended key '%s' to %s (restart tallyd to load it)\n",
                       args->name.c_str(), args->append.c_str());
        } else {
          std::printf("# add to the keys file:%s", entry.c_str());
        }
        std::printf("token: %s\n", token.c_str());
        std::fprintf(stderr, "The token is shown only this once; only its SHA-256 is stored.\n");
        return 0;
      }};
}

}  // namespace tally::cli
