-- A recipient with a certificate: at end of message the milter replaces Content-Type, adds the
-- S/MIME transfer headers and replaces the body; Subject is left alone.
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local conn = c.connect()
local r = c.envelope(conn, "MT0001", "<statements@bank.example>", {"<bob@partner.example>"})
assert(r["<bob@partner.example>"] == SMFIR_CONTINUE, "RCPT bob not continued")
local reply = c.message(conn, "MT0001", {
  {"From", "Statements <statements@bank.example>"}, {"To", "bob@partner.example"},
  {"Subject", "Your statement"}, {"MIME-Version", "1.0"},
  {"Content-Type", "text/plain; charset=us-ascii"}}, "Balance: 1,234.56 EUR\r\n")
assert(reply == SMFIR_ACCEPT or reply == SMFIR_CONTINUE, "end of message not accepted: " .. tostring(reply))
assert(mt.eom_check(conn, MT_HDRCHANGE, "Content-Type"), "Content-Type not changed")
assert(mt.eom_check(conn, MT_HDRADD, "Content-Transfer-Encoding"), "Content-Transfer-Encoding not added")
assert(mt.eom_check(conn, MT_BODYCHANGE), "body not replaced")
assert(not mt.eom_check(conn, MT_HDRCHANGE, "Subject"), "Subject must stay")
assert(not mt.eom_check(conn, MT_RCPTDELETE, "<bob@partner.example>"), "bob must stay a recipient")
mt.disconnect(conn)
