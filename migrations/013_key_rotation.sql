-- Key rotation (issue 14): where the pass that seals again with OFFLINEQ_ENCRYPTION_KEY what
-- OFFLINEQ_ENCRYPTION_KEY_PREVIOUS sealed has got to, so that every instance, a restart and a
-- crash go on from there (store/rotation.c). One row; its own table rather than a settings row,
-- whose every change is announced to every instance. An operator reads the progress here:
-- phase 0 operations, 1 files, 2 Idempotency-Key answers, 3 the check value, 4 done.
CREATE TABLE offlineq_key_rotation (
    id boolean PRIMARY KEY DEFAULT true CONSTRAINT offlineq_key_rotation_one_row CHECK (id),
    phase integer NOT NULL CONSTRAINT offlineq_key_rotation_phase_check CHECK (phase BETWEEN 0 AND 4),
    a text NOT NULL,
    b text NOT NULL,
    resealed bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
