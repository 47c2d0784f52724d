"""certs.py - a throw-away PKI for the TLS tests, made at test time.

Nothing secret is kept in the repository: each test run makes its own CA and the server and
client certificates it needs, in a temporary directory, with Python's cryptography package
(Debian: python3-cryptography). Keys are EC P-256, which is quick to generate.
"""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _write_certs(path, certs):
    with open(path, "wb") as f:
        for c in certs:
            f.write(c.public_bytes(serialization.Encoding.PEM))


def fingerprint_sha256(cert_path):
    """Lower-case hex SHA-256 of the first certificate in a PEM file."""
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    return cert.fingerprint(hashes.SHA256()).hex()


class CA:
    """A certificate authority in directory; issue() writes leaf certificates next to it."""

    def __init__(self, directory, name="smtphook test CA"):
        self.directory = directory
        self.name = name
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(self.key, hashes.SHA256()))
        slug = "".join(ch if ch.isalnum() else "-" for ch in name)
        self.ca_file = os.path.join(directory, slug + ".pem")
        _write_certs(self.ca_file, [self.cert])

    def issue(self, stem, names=("localhost",), client=False, expired=False, cn=None,
              organization=None):
        """Write <stem>.pem (leaf then this CA) and <stem>.key; return (cert, key) paths.

        names become subjectAltNames (IP addresses when they parse as one); client=True makes
        a client certificate; expired=True one that ran out yesterday."""
        key = _key()
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn or names[0])]
        if organization:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        now = _now()
        if expired:
            start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        else:
            start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        sans = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs)).issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256()))
        cert_path = os.path.join(self.directory, stem + ".pem")
        key_path = os.path.join(self.directory, stem + ".key")
        _write_certs(cert_path, [cert, self.cert])
        _write_key(key_path, key)
        return cert_path, key_path
