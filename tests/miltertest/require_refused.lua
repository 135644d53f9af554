-- A require recipient without a certificate is refused at RCPT (550 5.7.1); the next recipient
-- of the same transaction goes on.
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local conn = c.connect()
local r = c.envelope(conn, "MT0002", "<statements@bank.example>",
                     {"<nobody@secure.example>", "<bob@partner.example>"})
assert(r["<nobody@secure.example>"] == SMFIR_REPLYCODE, "require miss not refused: " .. tostring(r["<nobody@secure.example>"]))
assert(r["<bob@partner.example>"] == SMFIR_CONTINUE, "bob not continued")
mt.disconnect(conn)
