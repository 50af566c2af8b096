// The lines decode and capture say once a run ends (ctl/notes.h).
#include "ctl/notes.h"

#include <gtest/gtest.h>

namespace kvf::ctl {
namespace {

std::vector<std::string> NotesFor(const resp::ConnectionStats& totals) {
  ConnectionNames names;
  return names.Notes(totals, {});
}

// The one note that `totals` calls for.
std::string OnlyNote(const resp::ConnectionStats& totals) {
  const std::vector<std::string> notes = NotesFor(totals);
  EXPECT_EQ(notes.size(), 1u);
  return notes.empty() ? std::string() : notes[0];
}

TEST(CtlNotes, NothingToSayOnACleanRun) {
  EXPECT_TRUE(NotesFor(resp::ConnectionStats{}).empty());
}

// A write lost whole (no record names its key) is told: a review's MSET of
// 2.2 M pairs, past the 4 Mi arguments a request keeps, went unsaid.
TEST(CtlNotes, WritesTooLargeToReplicateAreTold) {
  resp::ConnectionStats totals;
  totals.oversized_lost = 2;
  const std::string note = OnlyNote(totals);
  EXPECT_EQ(note.rfind("2 write(s) too large to replicate were not", 0), 0u) << note;
  EXPECT_NE(note.find("consistency check"), std::string::npos) << note;
}

TEST(CtlNotes, KeylessFcallsOfLibrariesNotSeenLoadedAreTold) {
  resp::ConnectionStats totals;
  totals.fcall_unknown_keyless = 3;
  const std::string note = OnlyNote(totals);
  EXPECT_EQ(note.rfind("3 FCALL(s) that declared no keys", 0), 0u) << note;
  EXPECT_NE(note.find("FUNCTION RESTORE"), std::string::npos) << note;
}

TEST(CtlNotes, RepliesWithoutRequestsAreTold) {
  resp::ConnectionStats totals;
  totals.unpaired_replies = 20;
  const std::string note = OnlyNote(totals);
  EXPECT_EQ(note.rfind("20 reply(ies) had no request to pair with", 0), 0u) << note;
  EXPECT_NE(note.find("inline client"), std::string::npos) << note;
}

}  // namespace
}  // namespace kvf::ctl
