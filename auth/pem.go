package auth

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
)

// nextPEMKey decodes the next PUBLIC KEY block; it returns a nil key at the end.
func nextPEMKey(data []byte) (crypto.PublicKey, []byte, error) {
	for {
		block, rest := pem.Decode(data)
		if block == nil {
			return nil, nil, nil
		}
		data = rest
		if block.Type != "PUBLIC KEY" {
			continue
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, nil, errors.Join(errors.New("parse public key"), err)
		}
		return key, rest, nil
	}
}
