#include "store/record_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace tally::store {
namespace {

TEST(CodecTest, RecordPolicies) {
  Record r;
  MergeField({field::kUserName, 200, "new"}, &r);
  MergeField({field::kUserName, 100, "old"}, &r);  // older: ignored
  MergeField({field::kEntityCreated, 50, "u1"}, &r);
  MergeField({field::kEntityCreated, 60, "u2"}, &r);  // later created: ignored
  MergeField({field::kEntityCreated, 40, "u3"}, &r);  // earlier: wins
  std::string enc;
  AppendRecord(r, &enc);
  Record back;
  ASSERT_TRUE(DecodeRecord(enc, &back));
  ASSERT_NE(FindField(back, field::kUserName), nullptr);
  EXPECT_EQ(FindField(back, field::kUserName)->value, "new");
  EXPECT_EQ(FindField(back, field::kEntityCreated)->value, "u3");
  EXPECT_EQ(FindField(back, field::kUserEmail), nullptr);
}

// Every field id has exactly one row in kFieldTable, and the table names no other id; the rule
// PolicyOf gives each id is its row's.
TEST(CodecTest, EveryFieldIdHasExactlyOneTableRow) {
  const uint8_t ids[] = {
      field::kUserName,
      field::kUserEmail,
      field::kUserPhoto,
      field::kEntityName,
      field::kEntityVisibility,
      field::kEntityOwner,
      field::kEntityProject,
      field::kEntityDeleted,
      field::kEntityRevived,
      field::kEntityCreated,
      field::kEntityCopied,
      field::kWorkspaceOrganization,
      field::kWorkspaceFirstEvent,
      field::kWorkspaceLastEvent,
      field::kLabel,
  };
  std::set<uint8_t> distinct(std::begin(ids), std::end(ids));
  ASSERT_EQ(distinct.size(), std::size(ids)) << "two field ids share a value";
  EXPECT_EQ(std::size(kFieldTable), std::size(ids));
  for (uint8_t id : ids) {
    int rows = 0;
    for (const FieldSpec& spec : kFieldTable) {
      if (spec.id != id) continue;
      ++rows;
      EXPECT_EQ(PolicyOf(id), spec.policy) << spec.name;
      EXPECT_FALSE(spec.name.empty());
    }
    EXPECT_EQ(rows, 1) << "field id " << int{id};
  }
  // The rules the ids had when they were first stored.
  EXPECT_EQ(PolicyOf(field::kEntityCreated), kEarliestWins);
  EXPECT_EQ(PolicyOf(field::kWorkspaceFirstEvent), kEarliestWins);
  EXPECT_EQ(PolicyOf(field::kWorkspaceLastEvent), kLatestWins);
  EXPECT_EQ(PolicyOf(field::kLabel), kLatestWins);
}

}  // namespace
}  // namespace tally::store
