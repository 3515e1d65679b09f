//! `calseta rotate-encryption-key`: re-seals every stored secret with a new key in one
//! transaction. A value already sealed with the new key is only checked, so a second run (after a
//! crash, or to catch values written meanwhile by replicas still on the old key) is safe. A value
//! that no configured key opens rolls the whole rotation back.

use serde_json::Value;
use uuid::Uuid;

use super::{Cipher, CryptoError, envelope_key_id, open_json, seal_json, sealed_envelope};
use crate::db::{Db, Json, Tx};
use crate::with_tx;

/// How a column stores its secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealedForm {
    /// A JSON object stored as `{"_encrypted": "<envelope>"}` (an `auth_config`).
    JsonObject,
    /// The bare envelope as text.
    Envelope,
}

/// A column that holds sealed values.
#[derive(Clone, Copy, Debug)]
pub struct SealedColumn {
    pub table: &'static str,
    pub column: &'static str,
    pub form: SealedForm,
}

/// Every column that holds sealed values (data-model.md). A new secret column must be listed here,
/// or a rotation would leave it on the old key.
pub const SEALED_COLUMNS: &[SealedColumn] = &[
    SealedColumn { table: "source_integrations", column: "auth_config", form: SealedForm::JsonObject },
    SealedColumn { table: "enrichment_providers", column: "auth_config", form: SealedForm::JsonObject },
    SealedColumn { table: "agent_registrations", column: "auth_header_value_encrypted", form: SealedForm::Envelope },
];

/// What a rotation did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Values opened with an older key and sealed again with the new one.
    pub rotated: usize,
    /// Values already sealed with the new key (checked, left as they were).
    pub already_current: usize,
    /// Plain JSON objects found in a secret column, now sealed with the new key.
    pub sealed_plain: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("{table}.{column} of row {uuid} cannot be opened: {reason}")]
    Unopenable { table: &'static str, column: &'static str, uuid: Uuid, reason: String },
    #[error("database error during the rotation: {0}")]
    Database(#[from] sqlx::Error),
}

/// The fate of one stored value.
#[derive(Debug, PartialEq)]
enum Resealed<T> {
    AlreadyCurrent,
    Rotated(T),
    SealedPlain(T),
    /// A JSON `null`: no secret is stored.
    Nothing,
}

/// Why a stored value cannot be rotated, in words for the operator.
fn reason(error: &CryptoError) -> String {
    match error {
        CryptoError::UnknownKey(id) => format!(
            "it was sealed with key id {id}, which is none of the configured keys (add that key to \
             ENCRYPTION_KEY_PREVIOUS, or re-enter this secret)"
        ),
        CryptoError::Malformed => "it is not a sealed value this version can read".to_owned(),
        other => other.to_string(),
    }
}

/// `keyring` seals with the new key and opens with it and every old key.
fn reseal_json(keyring: &Cipher, stored: &Value) -> Result<Resealed<Value>, CryptoError> {
    match stored {
        Value::Null => Ok(Resealed::Nothing),
        Value::Object(map) if !map.contains_key(super::ENCRYPTED_KEY) => Ok(Resealed::SealedPlain(seal_json(keyring, map))),
        Value::Object(_) => {
            let envelope = sealed_envelope(stored).ok_or(CryptoError::Malformed)?;
            // Opened even when already on the new key: a rotation that succeeds has proved that
            // every stored secret opens with the new key.
            let object = open_json(keyring, stored)?;
            if envelope_key_id(envelope) == Some(keyring.key_id()) {
                Ok(Resealed::AlreadyCurrent)
            } else {
                Ok(Resealed::Rotated(seal_json(keyring, &object)))
            }
        }
        _ => Err(CryptoError::Malformed),
    }
}

/// A bare envelope sealed again with the new key; `None` when it already is.
fn reseal_envelope(keyring: &Cipher, envelope: &str) -> Result<Option<String>, CryptoError> {
    let plaintext = keyring.decrypt(envelope)?;
    if envelope_key_id(envelope) == Some(keyring.key_id()) {
        Ok(None)
    } else {
        Ok(Some(keyring.encrypt(&plaintext)))
    }
}

/// Re-seals every value of [`SEALED_COLUMNS`] with `keyring`'s current key, in one transaction.
pub async fn rotate(db: &Db, keyring: &Cipher) -> Result<RotationReport, RotationError> {
    let mut tx = db.begin().await?;
    if let Tx::Postgres(pg) = &mut tx {
        // Writers wait until the rotation commits: a concurrent update can then neither be
        // overwritten by the re-sealed old value nor slip in unrotated. Reads go on. (SQLite's
        // BEGIN IMMEDIATE already holds the only write lock.)
        let tables: Vec<&str> = SEALED_COLUMNS.iter().map(|c| c.table).collect();
        let sql = format!("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE", tables.join(", "));
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut **pg).await?;
    }
    let mut report = RotationReport::default();
    for column in SEALED_COLUMNS {
        let outcome = match column.form {
            SealedForm::JsonObject => rotate_json_column(&mut tx, column, keyring, &mut report).await,
            SealedForm::Envelope => rotate_envelope_column(&mut tx, column, keyring, &mut report).await,
        };
        // Dropping `tx` on the error path rolls everything back.
        outcome?;
    }
    tx.commit().await?;
    Ok(report)
}

/// `SELECT uuid, <column> … ORDER BY id` and `UPDATE … WHERE uuid = $2` for one column. Table and
/// column names come from [`SEALED_COLUMNS`], never from input.
fn statements(column: &SealedColumn) -> (String, String) {
    let SealedColumn { table, column, .. } = column;
    (
        format!("SELECT uuid, {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY id"),
        // `updated_at` stays: the secret itself did not change, only the key protecting it.
        format!("UPDATE {table} SET {column} = $1 WHERE uuid = $2"),
    )
}

fn unopenable(column: &SealedColumn, uuid: Uuid, error: &CryptoError) -> RotationError {
    RotationError::Unopenable { table: column.table, column: column.column, uuid, reason: reason(error) }
}

async fn rotate_json_column(tx: &mut Tx, column: &SealedColumn, keyring: &Cipher, report: &mut RotationReport) -> Result<(), RotationError> {
    let (select, update) = statements(column);
    let rows = with_tx!(&mut *tx, c => sqlx::query_as::<_, (Uuid, Json<Value>)>(sqlx::AssertSqlSafe(select)).fetch_all(c).await)?;
    for (uuid, Json(stored)) in rows {
        let new_value = match reseal_json(keyring, &stored).map_err(|e| unopenable(column, uuid, &e))? {
            Resealed::AlreadyCurrent => {
                report.already_current += 1;
                continue;
            }
            Resealed::Nothing => continue,
            Resealed::Rotated(value) => {
                report.rotated += 1;
                value
            }
            Resealed::SealedPlain(value) => {
                report.sealed_plain += 1;
                value
            }
        };
        let sql = sqlx::AssertSqlSafe(update.clone());
        with_tx!(&mut *tx, c => sqlx::query(sql).bind(Json(new_value)).bind(uuid).execute(c).await.map(|_| ()))?;
    }
    Ok(())
}

async fn rotate_envelope_column(tx: &mut Tx, column: &SealedColumn, keyring: &Cipher, report: &mut RotationReport) -> Result<(), RotationError> {
    let (select, update) = statements(column);
    let rows = with_tx!(&mut *tx, c => sqlx::query_as::<_, (Uuid, String)>(sqlx::AssertSqlSafe(select)).fetch_all(c).await)?;
    for (uuid, envelope) in rows {
        let Some(new_value) = reseal_envelope(keyring, &envelope).map_err(|e| unopenable(column, uuid, &e))? else {
            report.already_current += 1;
            continue;
        };
        report.rotated += 1;
        let sql = sqlx::AssertSqlSafe(update.clone());
        with_tx!(&mut *tx, c => sqlx::query(sql).bind(new_value).bind(uuid).execute(c).await.map(|_| ()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crypto::ENCRYPTED_KEY;

    fn key(seed: u8) -> [u8; 32] {
        std::array::from_fn(|i| seed.wrapping_mul(29).wrapping_add(i as u8))
    }

    #[test]
    fn json_values() {
        let old = Cipher::new(key(1));
        let ring = Cipher::rotating_to(key(2), Some(&old));
        let secret = json!({"api_key": "s3cr3t"});
        let object = secret.as_object().unwrap();

        let Resealed::Rotated(rotated) = reseal_json(&ring, &seal_json(&old, object)).unwrap() else { panic!() };
        assert_eq!(envelope_key_id(sealed_envelope(&rotated).unwrap()), Some(ring.key_id()));
        assert_eq!(&open_json(&Cipher::new(key(2)), &rotated).unwrap(), object);

        assert_eq!(reseal_json(&ring, &rotated).unwrap(), Resealed::AlreadyCurrent);

        let Resealed::SealedPlain(sealed) = reseal_json(&ring, &secret).unwrap() else { panic!() };
        assert_eq!(&open_json(&Cipher::new(key(2)), &sealed).unwrap(), object);
        assert!(!sealed.to_string().contains("s3cr3t"));

        assert_eq!(reseal_json(&ring, &Value::Null).unwrap(), Resealed::Nothing);
        assert_eq!(reseal_json(&ring, &json!("text")), Err(CryptoError::Malformed));
        assert_eq!(reseal_json(&ring, &json!({ENCRYPTED_KEY: 5})), Err(CryptoError::Malformed));
    }

    #[test]
    fn unknown_and_tampered_values_stop_the_rotation() {
        let ring = Cipher::rotating_to(key(2), Some(&Cipher::new(key(1))));
        let stranger = Cipher::new(key(3));
        let object = json!({"a": 1});
        let foreign = seal_json(&stranger, object.as_object().unwrap());
        assert_eq!(reseal_json(&ring, &foreign), Err(CryptoError::UnknownKey(stranger.key_id().to_owned())));
        // Already labelled with the new key but not opening with it: not silently accepted.
        let envelope = sealed_envelope(&foreign).unwrap().replacen(stranger.key_id(), ring.key_id(), 1);
        assert_eq!(reseal_json(&ring, &json!({ENCRYPTED_KEY: envelope})), Err(CryptoError::Tampered));
        assert!(reason(&CryptoError::UnknownKey("abcd0123".into())).contains("abcd0123"));
    }

    #[test]
    fn envelope_values() {
        let old = Cipher::new(key(1));
        let ring = Cipher::rotating_to(key(2), Some(&old));
        let rotated = reseal_envelope(&ring, &old.encrypt(b"Bearer xyz")).unwrap().unwrap();
        assert_eq!(Cipher::new(key(2)).decrypt(&rotated).unwrap(), b"Bearer xyz");
        assert_eq!(reseal_envelope(&ring, &rotated).unwrap(), None);
        assert_eq!(reseal_envelope(&ring, "Bearer xyz"), Err(CryptoError::Malformed));
    }

    #[test]
    fn statements_name_the_column() {
        let (select, update) = statements(&SEALED_COLUMNS[2]);
        assert_eq!(
            select,
            "SELECT uuid, auth_header_value_encrypted FROM agent_registrations WHERE auth_header_value_encrypted IS NOT NULL ORDER BY id"
        );
        assert_eq!(update, "UPDATE agent_registrations SET auth_header_value_encrypted = $1 WHERE uuid = $2");
    }
}
