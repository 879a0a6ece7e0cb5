package cognitoauth

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
)

// SRP-6a as Amazon Cognito runs it for USER_SRP_AUTH (the protocol of
// RFC 5054 with Cognito's choices): the 3072-bit group of RFC 3526 with
// generator 2, SHA-256 over the bytes of "padded" hex strings, x derived
// from the pool name, the user id and the password, and a 16-byte key
// drawn from the shared secret with HKDF ("Caldera Derived Key") that signs
// the server's secret block and a timestamp.

// srpNHex is the 3072-bit MODP prime of RFC 3526 (group 15).
const srpNHex = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
	"29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
	"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
	"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
	"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D" +
	"C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
	"83655D23DCA3AD961C62F356208552BB9ED529077096966D" +
	"670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
	"E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9" +
	"DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
	"15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64" +
	"ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7" +
	"ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B" +
	"F12FFA06D98A0864D87602733EC86A64521F2B18177B200C" +
	"BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31" +
	"43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"

var (
	srpN = mustBig(srpNHex)
	srpG = big.NewInt(2)
	// srpK is k = H(N || g), the multiplier of SRP-6a.
	srpK = new(big.Int).SetBytes(hashHex(padHex(srpN) + padHex(srpG)))
)

// derivedKeyInfo is the HKDF info Cognito's clients use.
const derivedKeyInfo = "Caldera Derived Key"

// timestampLayout is the TIMESTAMP Cognito expects: "Tue Jul 9 11:01:00
// UTC 2018", the day of the month not padded.
const timestampLayout = "Mon Jan 2 15:04:05 UTC 2006"

// errSRP marks a challenge that cannot be answered (a malformed or hostile
// server value); the sign-in fails rather than sending a weak proof.
var errSRP = errors.New("invalid SRP challenge")

func mustBig(h string) *big.Int {
	n, ok := new(big.Int).SetString(h, 16)
	if !ok {
		panic("cognitoauth: bad SRP constant")
	}
	return n
}

// padHex renders n as the hex string Cognito hashes: an even number of
// digits, and a leading "00" when the first digit is 8 or more, so that the
// bytes read as a positive two's-complement number (as Java's BigInteger
// writes them).
func padHex(n *big.Int) string {
	h := n.Text(16)
	if len(h)%2 == 1 {
		h = "0" + h
	} else if strings.IndexByte("89abcdef", h[0]) >= 0 {
		h = "00" + h
	}
	return h
}

// hashHex is SHA-256 over the bytes that the hex string h spells.
func hashHex(h string) []byte {
	b, err := hex.DecodeString(h)
	if err != nil {
		panic("cognitoauth: hashHex of non-hex input") // callers pass padHex output
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// srpSession is the client side of one USER_SRP_AUTH exchange.
type srpSession struct {
	a, bigA *big.Int
}

// newSRPSession draws the ephemeral secret a (128 random bytes, as
// Cognito's own clients do) and computes A = g^a mod N.
func newSRPSession(rnd io.Reader) (*srpSession, error) {
	buf := make([]byte, 128)
	if _, err := io.ReadFull(rnd, buf); err != nil {
		return nil, fmt.Errorf("random SRP secret: %w", err)
	}
	return srpSessionFrom(new(big.Int).SetBytes(buf))
}

func srpSessionFrom(a *big.Int) (*srpSession, error) {
	a = new(big.Int).Mod(a, srpN)
	bigA := new(big.Int).Exp(srpG, a, srpN)
	if bigA.Sign() == 0 {
		return nil, fmt.Errorf("%w: A is 0 mod N", errSRP)
	}
	return &srpSession{a: a, bigA: bigA}, nil
}

// srpA is the SRP_A auth parameter.
func (s *srpSession) srpA() string { return s.bigA.Text(16) }

// passwordKey derives the 16-byte key both sides share when the password
// is right. poolName is the part of the pool id after the region and "_";
// userID is the challenge's USER_ID_FOR_SRP; salt and B are the
// challenge's SALT and SRP_B (hex).
func (s *srpSession) passwordKey(poolName, userID, password, saltHex, bHex string) ([]byte, error) {
	salt, ok := new(big.Int).SetString(saltHex, 16)
	if !ok || salt.Sign() < 0 {
		return nil, fmt.Errorf("%w: SALT is not a hex number", errSRP)
	}
	bigB, ok := new(big.Int).SetString(bHex, 16)
	if !ok || bigB.Sign() <= 0 {
		return nil, fmt.Errorf("%w: SRP_B is not a positive hex number", errSRP)
	}
	// A server value B = 0 mod N would make the shared secret known to
	// anyone (SRP-6a's safety check).
	if new(big.Int).Mod(bigB, srpN).Sign() == 0 {
		return nil, fmt.Errorf("%w: SRP_B is 0 mod N", errSRP)
	}
	u := srpU(s.bigA, bigB)
	if u.Sign() == 0 {
		return nil, fmt.Errorf("%w: u is 0", errSRP)
	}
	x := srpX(poolName, userID, password, salt)
	// S = (B - k·g^x)^(a + u·x) mod N
	base := new(big.Int).Exp(srpG, x, srpN)
	base.Mul(base, srpK)
	base.Sub(bigB, base)
	base.Mod(base, srpN)
	exp := new(big.Int).Mul(u, x)
	exp.Add(exp, s.a)
	secret := new(big.Int).Exp(base, exp, srpN)
	return derivedKey(secret, u)
}

// srpU is u = H(A || B), the scrambling parameter.
func srpU(bigA, bigB *big.Int) *big.Int {
	return new(big.Int).SetBytes(hashHex(padHex(bigA) + padHex(bigB)))
}

// srpX is x = H(salt || H(poolName || userID || ":" || password)).
func srpX(poolName, userID, password string, salt *big.Int) *big.Int {
	inner := sha256.Sum256([]byte(poolName + userID + ":" + password))
	return new(big.Int).SetBytes(hashHex(padHex(salt) + hex.EncodeToString(inner[:])))
}

// derivedKey is HKDF-SHA256 over the padded shared secret, salted with
// the padded u.
func derivedKey(secret, u *big.Int) ([]byte, error) {
	ikm, _ := hex.DecodeString(padHex(secret))
	salt, _ := hex.DecodeString(padHex(u))
	return hkdf.Key(sha256.New, ikm, salt, derivedKeyInfo, 16)
}

// claimSignature is PASSWORD_CLAIM_SIGNATURE: the derived key's HMAC over
// the pool name, the user id, the server's secret block and the timestamp.
func claimSignature(key []byte, poolName, userID, secretBlockB64, timestamp string) (string, error) {
	block, err := decodeSecretBlock(secretBlockB64)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(poolName))
	mac.Write([]byte(userID))
	mac.Write(block)
	mac.Write([]byte(timestamp))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// srpTimestamp renders t as Cognito's TIMESTAMP.
func srpTimestamp(t time.Time) string { return t.UTC().Format(timestampLayout) }

// decodeSecretBlock decodes SECRET_BLOCK as Cognito's own clients do
// (Node's Buffer and Python's b64decode): characters outside the base64
// alphabet are skipped. Cognito sends plain base64, which decodes the same
// either way; moto sends a UUID.
func decodeSecretBlock(s string) ([]byte, error) {
	clean := strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' {
			return r
		}
		return -1
	}, s)
	block, err := base64.RawStdEncoding.DecodeString(clean)
	if err != nil || len(block) == 0 {
		return nil, fmt.Errorf("%w: SECRET_BLOCK is not base64", errSRP)
	}
	return block, nil
}
