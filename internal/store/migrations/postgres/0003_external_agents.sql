-- Agents of trusted external issuers (auth mode external) are registered on
-- first sight with registration 'external'.
ALTER TABLE agents DROP CONSTRAINT agents_registration_check;
ALTER TABLE agents ADD CONSTRAINT agents_registration_check
    CHECK (registration IN ('cimd', 'dcr', 'config', 'external'));
