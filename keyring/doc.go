// Package keyring owns umbra's secrets and capabilities: the Key type that
// never prints itself, the key files in a node directory (identity and user
// secret, written by CreateKeys and read by ReadKeys; internal/node owns the
// directory itself), and the capability strings that grant access to a
// file (ReadCap, VerifyCap): parse, format and attenuate.
//
// The byte layouts and the text form of capabilities are specified in
// docs/format.md ("Capabilities"). Nothing here touches the network.
package keyring
