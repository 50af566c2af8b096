// The lines decode and capture say once a run ends (ctl/notes.h).
#include "ctl/notes.h"

#include <gtest/gtest.h>

namespace kvf::ctl {
namespace {

std::vector<std::string> NotesFor(const resp::ConnectionStats& totals) {
  ConnectionNames names;
  return names.Notes(totals, {});
}

// `totals` calls for one note, which begins with `start` and says `fragment`.
void ExpectOneNote(const resp::ConnectionStats& totals, std::string_view start, std::string_view fragment) {
  const std::vector<std::string> notes = NotesFor(totals);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_EQ(notes[0].rfind(start, 0), 0u) << notes[0];
  EXPECT_NE(notes[0].find(fragment), std::string::npos) << notes[0];
}

TEST(CtlNotes, NothingToSayOnACleanRun) {
  EXPECT_TRUE(NotesFor(resp::ConnectionStats{}).empty());
}

// A write lost whole (no record names its key) is told: a review's MSET of
// 2.2 M pairs, past the 4 Mi arguments a request keeps, went unsaid.
TEST(CtlNotes, WritesTooLargeToReplicateAreTold) {
  resp::ConnectionStats totals;
  totals.oversized_lost = 2;
  ExpectOneNote(totals, "2 write(s) too large to replicate were not", "consistency check");
}

TEST(CtlNotes, KeylessFcallsOfLibrariesNotSeenLoadedAreTold) {
  resp::ConnectionStats totals;
  totals.fcall_unknown_keyless = 3;
  ExpectOneNote(totals, "3 FCALL(s) that declared no keys", "FUNCTION RESTORE");
}

TEST(CtlNotes, RepliesWithoutRequestsAreTold) {
  resp::ConnectionStats totals;
  totals.unpaired_replies = 20;
  ExpectOneNote(totals, "20 reply(ies) had no request to pair with", "inline client");
}

}  // namespace
}  // namespace kvf::ctl
