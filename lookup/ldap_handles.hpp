// lookup/ldap_handles.hpp — ownership of libldap handles (one alias per type, as crypto/ossl.hpp).
//
// Purpose:   every LDAP*, LDAPMessage*, BerElement*, berval** and libldap-allocated string
//            lives in one of these unique_ptrs (base::Deleter), so no path leaks a handle.
// Ownership: LDAP_ptr owns the connection (ldap_unbind_ext_s closes it); LDAPMessage_ptr a
//            result chain (ldap_msgfree); BerElement_ptr the attribute iterator
//            (ber_free(b, 0): the buffer belongs to the message); BervalArray_ptr the values of
//            ldap_get_values_len; LdapString_ptr a string from ldap_first/next_attribute or
//            ldap_get_option(..DIAGNOSTIC_MESSAGE..).
// Threads:   a handle is used by one thread at a time (the source's pool hands it out).
// Errors:    none.
#pragma once

#include "base/handle.hpp"

#include <ldap.h>

#include <memory>

namespace sealmilter::lookup::ldap {

inline void unbind(LDAP* ld) { ldap_unbind_ext_s(ld, nullptr, nullptr); }
inline void free_message(LDAPMessage* m) { ldap_msgfree(m); }
inline void free_ber(BerElement* b) { ber_free(b, 0); }
inline void free_values(berval** v) { ldap_value_free_len(v); }
inline void free_string(char* s) { ldap_memfree(s); }

using LDAP_ptr = std::unique_ptr<LDAP, base::Deleter<unbind>>;
using LDAPMessage_ptr = std::unique_ptr<LDAPMessage, base::Deleter<free_message>>;
using BerElement_ptr = std::unique_ptr<BerElement, base::Deleter<free_ber>>;
using BervalArray_ptr = std::unique_ptr<berval*, base::Deleter<free_values>>;
using LdapString_ptr = std::unique_ptr<char, base::Deleter<free_string>>;

}  // namespace sealmilter::lookup::ldap
