-- Already-encrypted mail and mail to a recipient without a certificate (opportunistic) pass
-- with no modification at all.
package.path = os.getenv("MILTERTEST_DIR") .. "/?.lua;" .. package.path
local c = require("common")
local conn = c.connect()
c.envelope(conn, "MT0003", "<statements@bank.example>", {"<bob@partner.example>"})
local reply = c.message(conn, "MT0003", {
  {"From", "statements@bank.example"}, {"To", "bob@partner.example"}, {"MIME-Version", "1.0"},
  {"Content-Type", "application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\""},
  {"Content-Transfer-Encoding", "base64"}}, "MIAGCSqGSIb3DQEHA6CAMIACAQAxggE=\r\n")
assert(reply == SMFIR_ACCEPT or reply == SMFIR_CONTINUE, "already encrypted not accepted")
assert(not mt.eom_check(conn, MT_BODYCHANGE), "already-encrypted body must not change")
assert(not mt.eom_check(conn, MT_HDRCHANGE, "Content-Type"), "already-encrypted Content-Type must not change")
-- a second message on the same connection: opportunistic, no certificate
c.envelope(conn, "MT0004", "<statements@bank.example>", {"<nocert@partner.example>"})
reply = c.message(conn, "MT0004", {{"From", "statements@bank.example"}, {"To", "nocert@partner.example"}},
                  "plain\r\n")
assert(reply == SMFIR_ACCEPT or reply == SMFIR_CONTINUE, "opportunistic miss not accepted")
assert(not mt.eom_check(conn, MT_BODYCHANGE), "opportunistic miss must pass unchanged")
mt.disconnect(conn)
