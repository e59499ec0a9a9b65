// SPDX-License-Identifier: MIT
pragma solidity 0.8.29;

/// @title IProvenanceLedger
/// @notice Append-only registry of datasets, models and prediction batches, identified by their
/// content hashes. Storage keeps only what on-chain checks need (kind, registrant, time, revoked);
/// every other field travels in the events, which an indexer or an auditor reads back.
///
/// Generations: a contract is never upgraded in place. A new version is deployed naming its
/// predecessor (set once, at construction; `address(0)` for a first generation) and answers every
/// read of a record it does not hold by asking that predecessor, which may ask its own. So records
/// of every earlier generation can be parents, training datasets, batch models and revocation
/// targets of new writes, and the newest generation answers for the whole history.
///
/// Revocation across generations: an older generation is immutable, so revoking one of its
/// records through a newer one stores, in the newer one, a copy of the record's slot (same kind,
/// registrant and registration time) marked revoked, and emits {RecordRevoked} from the newer
/// one. Reads that go through the newest generation see the revocation; an older generation read
/// directly still answers what it knew. The newest generation is the one to ask.
interface IProvenanceLedger {
    /// @notice What a record hash refers to. `None` means "not registered".
    enum RecordKind {
        None,
        Dataset,
        Model,
        Batch
    }

    /// @notice The stored part of a record: one packed storage slot.
    /// @param kind What the hash refers to.
    /// @param revoked Whether the record was revoked (revocation never deletes anything).
    /// @param registeredAt The block timestamp of the registration.
    /// @param registrant The account that registered the record.
    struct Record {
        RecordKind kind;
        bool revoked;
        uint40 registeredAt;
        address registrant;
    }

    /// @notice One dataset of {registerDatasets}: the arguments of {registerDataset}.
    struct DatasetInput {
        bytes32 contentHash;
        bytes32 rowsRoot;
        uint64 rowCount;
        bytes32 schemaHash;
        bytes32 metadataHash;
        bytes32[] parents;
        bytes32 transformHash;
    }

    /// @notice One model of {registerModels}: the arguments of {registerModel}.
    struct ModelInput {
        bytes32 modelHash;
        bytes32[] datasets;
        bytes32 metadataHash;
    }

    /// @notice One prediction batch of {anchorPredictionBatches}: the arguments of
    /// {anchorPredictions}.
    struct AnchorInput {
        bytes32 modelHash;
        bytes32 root;
        uint64 count;
    }

    /// @notice Emitted when a dataset is registered.
    /// @param contentHash SHA-256 of the dataset file's exact bytes.
    /// @param registrant The registering account.
    /// @param rowsRoot StandardMerkleTree root over `[rowIndex, rowDigest]` leaves.
    /// @param rowCount Number of data rows.
    /// @param schemaHash SHA-256 of the canonical column list.
    /// @param metadataHash SHA-256 of the dataset's canonical metadata document (zero if none).
    /// @param parents Datasets this one was derived from (empty for raw data).
    /// @param transformHash SHA-256 of the canonical transform spec (zero for raw data).
    event DatasetRegistered(
        bytes32 indexed contentHash,
        address indexed registrant,
        bytes32 rowsRoot,
        uint64 rowCount,
        bytes32 schemaHash,
        bytes32 metadataHash,
        bytes32[] parents,
        bytes32 transformHash
    );

    /// @notice Emitted when a model is registered.
    /// @param modelHash SHA-256 of the model file.
    /// @param registrant The registering account.
    /// @param datasets The training dataset hashes.
    /// @param metadataHash SHA-256 of the canonical training-metadata document.
    event ModelRegistered(
        bytes32 indexed modelHash, address indexed registrant, bytes32[] datasets, bytes32 metadataHash
    );

    /// @notice Emitted when a batch of prediction receipts is anchored.
    /// @param root StandardMerkleTree root over the receipts' leaves; also the batch id.
    /// @param modelHash The model that produced every receipt in the batch.
    /// @param registrant The anchoring account.
    /// @param count Number of receipts in the batch.
    event PredictionsAnchored(
        bytes32 indexed root, bytes32 indexed modelHash, address indexed registrant, uint64 count
    );

    /// @notice Emitted when a record is revoked.
    /// @param recordHash The revoked record.
    /// @param revoker The account that revoked it.
    /// @param kind The kind of the revoked record.
    /// @param reason Free-text reason, kept forever in the log.
    event RecordRevoked(
        bytes32 indexed recordHash, address indexed revoker, RecordKind kind, string reason
    );

    /// @notice Emitted once, at construction, by a generation that succeeds `predecessor`.
    /// @param predecessor The previous generation, asked for every record this one does not hold.
    event PredecessorSet(address indexed predecessor);

    /// @notice The predecessor given at construction holds no code: it cannot be a ledger.
    error InvalidPredecessor(address predecessor);

    /// @notice A record hash (content hash, model hash or batch root) was zero.
    error ZeroRecordHash();

    /// @notice The hash is already registered, as `existingKind`.
    error RecordAlreadyRegistered(bytes32 recordHash, RecordKind existingKind);

    /// @notice No record of `expectedKind` is registered under `recordHash`.
    error UnknownRecord(bytes32 recordHash, RecordKind expectedKind);

    /// @notice The record `recordHash` is revoked and cannot be built upon.
    error RecordIsRevoked(bytes32 recordHash);

    /// @notice The record `recordHash` was revoked before.
    error RecordAlreadyRevoked(bytes32 recordHash);

    /// @notice `account` is neither the registrant of `recordHash` nor an admin.
    error NotRegistrant(bytes32 recordHash, address account);

    /// @notice The dataset `contentHash` is inconsistent: a derived dataset needs both parents and
    /// a transform hash; raw data needs neither.
    error InconsistentDerivation(bytes32 contentHash, uint256 parentCount, bytes32 transformHash);

    /// @notice The model `modelHash` names no training dataset; it must name at least one.
    error NoTrainingData(bytes32 modelHash);

    /// @notice The prediction batch `root` holds no receipt; it must hold at least one.
    error EmptyBatch(bytes32 root);

    /// @notice A batch write ({registerDatasets}, {registerModels}, {anchorPredictionBatches})
    /// was given no record: a transaction that writes nothing is a caller's mistake.
    error EmptyRecordList();

    /// @notice A revocation must say why.
    error EmptyReason();

    /// @notice Registers a dataset. Requires `REGISTRAR_ROLE`.
    /// @dev Reverts with {ZeroRecordHash}, {RecordAlreadyRegistered}, {InconsistentDerivation},
    /// {UnknownRecord} for an unknown parent and {RecordIsRevoked} for a revoked parent.
    function registerDataset(
        bytes32 contentHash,
        bytes32 rowsRoot,
        uint64 rowCount,
        bytes32 schemaHash,
        bytes32 metadataHash,
        bytes32[] calldata parents,
        bytes32 transformHash
    ) external;

    /// @notice Registers a model trained on `datasets`. Requires `REGISTRAR_ROLE`.
    /// @dev Reverts with {ZeroRecordHash}, {RecordAlreadyRegistered}, {NoTrainingData},
    /// {UnknownRecord} and {RecordIsRevoked} for its datasets.
    function registerModel(bytes32 modelHash, bytes32[] calldata datasets, bytes32 metadataHash)
        external;

    /// @notice Anchors a Merkle batch of prediction receipts of `modelHash`. Requires `REGISTRAR_ROLE`.
    /// @dev Reverts with {ZeroRecordHash}, {EmptyBatch}, {RecordAlreadyRegistered} for a root seen
    /// before, {UnknownRecord} and {RecordIsRevoked} for the model.
    /// @return batchId The batch id, which is its root.
    function anchorPredictions(bytes32 modelHash, bytes32 root, uint64 count)
        external
        returns (bytes32 batchId);

    /// @notice Registers several datasets in one transaction, in order, each exactly as
    /// {registerDataset} would (same checks, same errors, one {DatasetRegistered} each), so a
    /// dataset may name an earlier one of the same call as its parent. Requires `REGISTRAR_ROLE`.
    /// @dev Any failing record reverts the whole call with that record's error; an empty list
    /// reverts with {EmptyRecordList}.
    function registerDatasets(DatasetInput[] calldata datasets) external;

    /// @notice Registers several models in one transaction, in order, each exactly as
    /// {registerModel} would (same checks, same errors, one {ModelRegistered} each).
    /// Requires `REGISTRAR_ROLE`.
    /// @dev Any failing record reverts the whole call with that record's error; an empty list
    /// reverts with {EmptyRecordList}.
    function registerModels(ModelInput[] calldata models) external;

    /// @notice Anchors several prediction batches in one transaction, in order, each exactly as
    /// {anchorPredictions} would (same checks, same errors, one {PredictionsAnchored} each).
    /// Requires `REGISTRAR_ROLE`.
    /// @dev Any failing batch reverts the whole call with that batch's error; an empty list
    /// reverts with {EmptyRecordList}. The batch ids are the roots, which the caller holds.
    function anchorPredictionBatches(AnchorInput[] calldata batches) external;

    /// @notice Revokes a record for good. Allowed to its registrant (still holding
    /// `REGISTRAR_ROLE`) and to any admin. A record of an earlier generation is revoked here by
    /// keeping a revoked copy of its slot (see the interface's notice on generations).
    /// @dev Reverts with {UnknownRecord}, {RecordAlreadyRevoked}, {EmptyReason}, {NotRegistrant}.
    function revoke(bytes32 recordHash, string calldata reason) external;

    /// @notice The previous generation, set once at construction; `address(0)` for a first
    /// generation.
    function predecessor() external view returns (address);

    /// @notice The stored part of any record, from this generation or the nearest earlier one
    /// that holds it; `kind == None` when unknown.
    function getRecord(bytes32 recordHash) external view returns (Record memory);

    /// @notice The stored part of each record, in the order asked, so that a verifier reads every
    /// record state it needs in one call; an unknown hash gives `kind == None`.
    function getRecords(bytes32[] calldata recordHashes) external view returns (Record[] memory);

    /// @notice The stored part of a dataset; reverts with {UnknownRecord} if it is not one.
    function getDataset(bytes32 contentHash) external view returns (Record memory);

    /// @notice The stored part of a model; reverts with {UnknownRecord} if it is not one.
    function getModel(bytes32 modelHash) external view returns (Record memory);

    /// @notice The stored part of a prediction batch; reverts with {UnknownRecord} if it is not one.
    function getBatch(bytes32 batchId) external view returns (Record memory);

    /// @notice Whether a registered record was revoked; reverts with {UnknownRecord} if unknown.
    function isRevoked(bytes32 recordHash) external view returns (bool);

    /// @notice Whether `leaf` (a StandardMerkleTree leaf hash) is in the anchored batch `batchId`.
    /// @dev Reverts with {UnknownRecord} if `batchId` is not an anchored batch.
    function verifyPrediction(bytes32 batchId, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool);

    /// @notice The contract's semantic version.
    function version() external pure returns (string memory);
}
