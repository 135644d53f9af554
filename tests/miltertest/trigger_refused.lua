-- A [secure] subject raises the message to require: without a certificate the message is
-- refused at end of data with 550 5.7.1, and nothing was changed.
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local conn = c.connect()
c.envelope(conn, "MT0005", "<statements@bank.example>", {"<nocert@partner.example>"})
local reply = c.message(conn, "MT0005", {{"From", "statements@bank.example"}, {"To", "nocert@partner.example"},
                                         {"Subject", "[secure] Salary"}}, "secret\r\n")
assert(reply == SMFIR_REPLYCODE, "triggered message without certificate not refused: " .. tostring(reply))
assert(mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1",
  "<nocert@partner.example>: encryption is required and no usable certificate was found; "
  .. "the message was not delivered to any recipient"), "not 550 5.7.1 with the sentence")
assert(not mt.eom_check(conn, MT_BODYCHANGE), "body must not change")
mt.disconnect(conn)
