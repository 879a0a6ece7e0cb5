package cognitoauth

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// Test vectors published with github.com/alexrudd/cognito-srp, whose
// values were computed with capless/warrant, a Python client used against
// Cognito: an independent implementation agreeing on every step.
func TestSRPMatchesPublishedVectors(t *testing.T) {
	wantK, _ := new(big.Int).SetString("37772559067617796309459009502931177628717927509759535181635788491848250400486", 10)
	if srpK.Cmp(wantK) != 0 {
		t.Errorf("k = %v, want %v", srpK, wantK)
	}
	s, err := srpSessionFrom(big.NewInt(1234567890))
	if err != nil {
		t.Fatal(err)
	}
	wantA, _ := new(big.Int).SetString("2012821450179237266067414751941060928019817287314017835667297413615441680042015648893619512074574801551816908048875039310556108650595869145768432324376774060555385775073708569121688902158895642383219736852216366144529156744028151458424436810791218362729260005923018973559621869173270335133101064964177433161771074465994401225946602823489327809869650103314918749719145076380535976325009253493972634191523079035525341598366462733532137597586069288340594563327421244726332307232609401008335819089778907622323610696065668900966210610871808610884224270017149857647788822043386341947275701612494162630191389615660619561655481399573723311377577792260581174997618956152489507325218699555095233121100546572188701563979417701865276739418278601329844176326814813849675127887644523181751359470351143169066091784103404544366711287145804238613966547260918328728126017769114261057445005776403447691297001659393612551419207658913838531096191", 10)
	if s.bigA.Cmp(wantA) != 0 {
		t.Errorf("A for a = 1234567890 differs from the vector")
	}
	a, _ := new(big.Int).SetString("6D797365637265746861736841", 16)
	b, _ := new(big.Int).SetString("6D797365637265746861736842", 16)
	wantU, _ := new(big.Int).SetString("39743664823761398449876968619416475559594078623923024211668626611155104513539", 10)
	if u := srpU(a, b); u.Cmp(wantU) != 0 {
		t.Errorf("u = %v, want %v", u, wantU)
	}
	// Pool eu-west-1_myPool, user "test", password "test", salt and B
	// 1234567890.
	key, err := s.passwordKey("myPool", "test", "test", "499602d2", "499602d2")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(key); got != "d96cde6c95dda17175c1293140c5a81f" {
		t.Errorf("password key %s", got)
	}
	ts := srpTimestamp(time.Date(2018, 7, 10, 11, 1, 0, 0, time.UTC))
	sig, err := claimSignature(key, "myPool", "test", base64.StdEncoding.EncodeToString([]byte("secretssecrestssecrets")), ts)
	if err != nil {
		t.Fatal(err)
	}
	if want := "tdvQu/Li/qWl8Nni0aFPs+MwY4rvKZm0kSMrGIMSUHk="; sig != want {
		t.Errorf("PASSWORD_CLAIM_SIGNATURE %s, want %s", sig, want)
	}
}

func TestTheTimestampIsCognitosFormat(t *testing.T) {
	for _, tt := range []struct {
		at   time.Time
		want string
	}{
		{time.Date(2018, 7, 10, 11, 1, 0, 0, time.UTC), "Tue Jul 10 11:01:00 UTC 2018"},
		{time.Date(2026, 3, 5, 9, 4, 7, 0, time.UTC), "Thu Mar 5 09:04:07 UTC 2026"},
		{time.Date(2026, 3, 5, 1, 4, 7, 0, time.FixedZone("CET", 3600)), "Thu Mar 5 00:04:07 UTC 2026"},
	} {
		if got := srpTimestamp(tt.at); got != tt.want {
			t.Errorf("srpTimestamp(%v) = %q, want %q", tt.at, got, tt.want)
		}
	}
}

// srpServer is the server side of Cognito's SRP-6a, written for this test
// from RFC 5054 and the client conventions (it shares no helper with the
// client code: its byte encoding of numbers is its own): a verifier from
// salt and password, B, and the check of the client's signature.
type srpServer struct {
	poolName, userID string
	salt, v, b, bigB *big.Int
}

// twosComplement is the big-endian bytes of a positive n with a leading
// zero byte when the high bit is set: what padHex's hex spells.
func twosComplement(n *big.Int) []byte {
	b := n.Bytes()
	if len(b) == 0 || b[0]&0x80 != 0 {
		b = append([]byte{0}, b...)
	}
	return b
}

func sha(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func newSRPServer(poolName, userID, password string, salt, b *big.Int) *srpServer {
	n, _ := new(big.Int).SetString(srpNHex, 16)
	g := big.NewInt(2)
	inner := sha([]byte(poolName + userID + ":" + password))
	x := new(big.Int).SetBytes(sha(twosComplement(salt), inner))
	v := new(big.Int).Exp(g, x, n)
	k := new(big.Int).SetBytes(sha(twosComplement(n), twosComplement(g)))
	bigB := new(big.Int).Mul(k, v)
	bigB.Add(bigB, new(big.Int).Exp(g, b, n))
	bigB.Mod(bigB, n)
	return &srpServer{poolName: poolName, userID: userID, salt: salt, v: v, b: b, bigB: bigB}
}

// verify checks the client's PASSWORD_CLAIM_SIGNATURE for A.
func (s *srpServer) verify(bigA *big.Int, secretBlock []byte, timestamp, signature string) bool {
	n, _ := new(big.Int).SetString(srpNHex, 16)
	u := new(big.Int).SetBytes(sha(twosComplement(bigA), twosComplement(s.bigB)))
	// S = (A · v^u)^b mod N
	base := new(big.Int).Exp(s.v, u, n)
	base.Mul(base, bigA)
	base.Mod(base, n)
	secret := new(big.Int).Exp(base, s.b, n)
	key, err := hkdf.Key(sha256.New, twosComplement(secret), twosComplement(u), "Caldera Derived Key", 16)
	if err != nil {
		panic(err) // only for a length HKDF cannot produce
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(s.poolName + s.userID))
	mac.Write(secretBlock)
	mac.Write([]byte(timestamp))
	got, err := base64.StdEncoding.DecodeString(signature)
	return err == nil && hmac.Equal(got, mac.Sum(nil))
}

// The client's proof verifies against a server that holds only the
// verifier, for any pool, user, password and salt; a wrong password, a
// changed secret block or timestamp does not.
func TestTheSRPProofVerifiesOnlyWithTheRightPassword(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pool := rapid.StringMatching(`[A-Za-z0-9]{1,12}`).Draw(t, "pool")
		user := rapid.StringMatching(`[a-z0-9-]{1,40}`).Draw(t, "user")
		password := rapid.String().Draw(t, "password")
		other := rapid.String().Filter(func(s string) bool { return s != password }).Draw(t, "wrong password")
		// Salts with leading zero bytes and with the high bit set
		// exercise the padding.
		saltBytes := rapid.SliceOfN(rapid.Byte(), 1, 32).Draw(t, "salt")
		salt := new(big.Int).SetBytes(saltBytes)
		b := new(big.Int).SetBytes(rapid.SliceOfN(rapid.Byte(), 16, 64).Draw(t, "b"))
		a := new(big.Int).SetBytes(rapid.SliceOfN(rapid.Byte(), 16, 128).Draw(t, "a"))
		block := rapid.SliceOfN(rapid.Byte(), 1, 64).Draw(t, "secret block")
		ts := srpTimestamp(time.Unix(rapid.Int64Range(0, 4e9).Draw(t, "time"), 0))

		server := newSRPServer(pool, user, password, salt, b)
		sess, err := srpSessionFrom(a)
		if err != nil {
			t.Skip("A = 0 mod N")
		}
		sign := func(pw string) string {
			key, err := sess.passwordKey(pool, user, pw, hex.EncodeToString(saltBytes), server.bigB.Text(16))
			if err != nil {
				t.Fatalf("passwordKey: %v", err)
			}
			sig, err := claimSignature(key, pool, user, base64.StdEncoding.EncodeToString(block), ts)
			if err != nil {
				t.Fatalf("claimSignature: %v", err)
			}
			return sig
		}
		good := sign(password)
		if !server.verify(sess.bigA, block, ts, good) {
			t.Fatalf("the server refuses the proof of the right password")
		}
		if server.verify(sess.bigA, block, ts, sign(other)) {
			t.Fatalf("the server accepts the proof of a wrong password")
		}
		if server.verify(sess.bigA, append([]byte{1}, block...), ts, good) {
			t.Fatalf("the proof verifies for another secret block")
		}
		if server.verify(sess.bigA, block, ts+" ", good) {
			t.Fatalf("the proof verifies for another timestamp")
		}
	})
}

func TestHostileServerValuesAreRefused(t *testing.T) {
	sess, err := srpSessionFrom(big.NewInt(987654321))
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct{ salt, b string }{
		"B = 0":              {"ab", "0"},
		"B = N":              {"ab", srpNHex},
		"B = 2N":             {"ab", new(big.Int).Lsh(srpN, 1).Text(16)},
		"B not hex":          {"ab", "xyz"},
		"salt not hex":       {"salt!", "1234"},
		"B negative":         {"ab", "-5"},
		"empty salt":         {"", "1234"},
		"empty B":            {"ab", ""},
		"B with hex prefix":  {"ab", "0x1234"},
		"salt with a prefix": {"0xab", "1234"},
	} {
		if _, err := sess.passwordKey("pool", "user", "pw", tt.salt, tt.b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := claimSignature(make([]byte, 16), "p", "u", "!!!", "ts"); err == nil {
		t.Error("a SECRET_BLOCK with no base64 in it was accepted")
	}
}

// Cognito sends standard base64; moto sends a UUID, which Cognito's own
// clients decode by skipping what is not base64.
func TestTheSecretBlockDecodesAsCognitosClientsDo(t *testing.T) {
	for in, want := range map[string][]byte{
		base64.StdEncoding.EncodeToString([]byte("secret block")): []byte("secret block"),
		"c2VjcmV0":                             []byte("secret"),
		"1b4e28ba-2fa1-11d2-883f-0016d3cca427": mustB64(t, "1b4e28ba2fa111d2883f0016d3cca427"),
	} {
		got, err := decodeSecretBlock(in)
		if err != nil || string(got) != string(want) {
			t.Errorf("decodeSecretBlock(%q) = %x, %v; want %x", in, got, err, want)
		}
	}
}

func mustB64(t *testing.T, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
