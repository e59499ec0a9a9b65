// SPDX-License-Identifier: MIT
pragma solidity 0.8.29;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IProvenanceLedger} from "./IProvenanceLedger.sol";

/// @title ProvenanceLedger
/// @notice Records datasets, models and prediction batches by content hash, write once.
/// Writes need `REGISTRAR_ROLE`; reads are open to anyone. A later generation names this one as
/// its predecessor and falls back to it (see {IProvenanceLedger}), as ENS's
/// `ENSRegistryWithFallback` does: no proxy, so no admin can change how old records read.
contract ProvenanceLedger is IProvenanceLedger, AccessControl {
    /// @notice The role allowed to register, anchor and revoke its own records.
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    string private constant VERSION = "1.2.0";

    /// @dev Immutable, so a first generation's hot paths test it without a storage read and a
    /// deployed contract can never be pointed elsewhere. The code hash a deployment pins leaves
    /// the immutable's bytes out (they are the only part of the runtime code set at deployment).
    address private immutable _PREDECESSOR;

    mapping(bytes32 recordHash => Record) private _records;

    /// @param admin Receives `DEFAULT_ADMIN_ROLE` and `REGISTRAR_ROLE`.
    /// @param predecessor_ The previous generation, or `address(0)` for a first generation.
    constructor(address admin, address predecessor_) {
        if (predecessor_ != address(0)) {
            if (predecessor_.code.length == 0) revert InvalidPredecessor(predecessor_);
            emit PredecessorSet(predecessor_);
        }
        _PREDECESSOR = predecessor_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    /// @inheritdoc IProvenanceLedger
    function registerDataset(
        bytes32 contentHash,
        bytes32 rowsRoot,
        uint64 rowCount,
        bytes32 schemaHash,
        bytes32 metadataHash,
        bytes32[] calldata parents,
        bytes32 transformHash
    ) external onlyRole(REGISTRAR_ROLE) {
        _registerDataset(
            contentHash, rowsRoot, rowCount, schemaHash, metadataHash, parents, transformHash
        );
    }

    /// @inheritdoc IProvenanceLedger
    function registerDatasets(DatasetInput[] calldata datasets)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        if (datasets.length == 0) revert EmptyRecordList();
        for (uint256 i = 0; i < datasets.length; ++i) {
            DatasetInput calldata d = datasets[i];
            _registerDataset(
                d.contentHash,
                d.rowsRoot,
                d.rowCount,
                d.schemaHash,
                d.metadataHash,
                d.parents,
                d.transformHash
            );
        }
    }

    /// @inheritdoc IProvenanceLedger
    function registerModel(bytes32 modelHash, bytes32[] calldata datasets, bytes32 metadataHash)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        _registerModel(modelHash, datasets, metadataHash);
    }

    /// @inheritdoc IProvenanceLedger
    function registerModels(ModelInput[] calldata models) external onlyRole(REGISTRAR_ROLE) {
        if (models.length == 0) revert EmptyRecordList();
        for (uint256 i = 0; i < models.length; ++i) {
            ModelInput calldata m = models[i];
            _registerModel(m.modelHash, m.datasets, m.metadataHash);
        }
    }

    /// @inheritdoc IProvenanceLedger
    function anchorPredictions(bytes32 modelHash, bytes32 root, uint64 count)
        external
        onlyRole(REGISTRAR_ROLE)
        returns (bytes32 batchId)
    {
        _anchorPredictions(modelHash, root, count);
        return root;
    }

    /// @inheritdoc IProvenanceLedger
    function anchorPredictionBatches(AnchorInput[] calldata batches)
        external
        onlyRole(REGISTRAR_ROLE)
    {
        if (batches.length == 0) revert EmptyRecordList();
        for (uint256 i = 0; i < batches.length; ++i) {
            AnchorInput calldata b = batches[i];
            _anchorPredictions(b.modelHash, b.root, b.count);
        }
    }

    /// @inheritdoc IProvenanceLedger
    function revoke(bytes32 recordHash, string calldata reason) external {
        Record storage stored = _records[recordHash];
        Record memory record = stored;
        bool older = record.kind == RecordKind.None && _PREDECESSOR != address(0);
        if (older) record = _older(recordHash);
        if (record.kind == RecordKind.None) revert UnknownRecord(recordHash, RecordKind.None);
        if (record.revoked) revert RecordAlreadyRevoked(recordHash);
        if (bytes(reason).length == 0) revert EmptyReason();
        if (!hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) {
            _checkRole(REGISTRAR_ROLE);
            if (record.registrant != msg.sender) revert NotRegistrant(recordHash, msg.sender);
        }
        if (older) {
            // an earlier generation's record: keep a revoked copy of its slot here
            stored.kind = record.kind;
            stored.registeredAt = record.registeredAt;
            stored.registrant = record.registrant;
        }
        stored.revoked = true;
        emit RecordRevoked(recordHash, msg.sender, record.kind, reason);
    }

    /// @inheritdoc IProvenanceLedger
    function predecessor() external view returns (address) {
        return _PREDECESSOR;
    }

    /// @inheritdoc IProvenanceLedger
    function getRecord(bytes32 recordHash) external view returns (Record memory) {
        return _lookup(recordHash);
    }

    /// @inheritdoc IProvenanceLedger
    function getRecords(bytes32[] calldata recordHashes)
        external
        view
        returns (Record[] memory records)
    {
        records = new Record[](recordHashes.length);
        for (uint256 i = 0; i < recordHashes.length; ++i) {
            records[i] = _lookup(recordHashes[i]);
        }
    }

    /// @inheritdoc IProvenanceLedger
    function getDataset(bytes32 contentHash) external view returns (Record memory) {
        return _recordOf(contentHash, RecordKind.Dataset);
    }

    /// @inheritdoc IProvenanceLedger
    function getModel(bytes32 modelHash) external view returns (Record memory) {
        return _recordOf(modelHash, RecordKind.Model);
    }

    /// @inheritdoc IProvenanceLedger
    function getBatch(bytes32 batchId) external view returns (Record memory) {
        return _recordOf(batchId, RecordKind.Batch);
    }

    /// @inheritdoc IProvenanceLedger
    function isRevoked(bytes32 recordHash) external view returns (bool) {
        return _recordOf(recordHash, RecordKind.None).revoked;
    }

    /// @inheritdoc IProvenanceLedger
    function verifyPrediction(bytes32 batchId, bytes32 leaf, bytes32[] calldata proof)
        external
        view
        returns (bool)
    {
        _recordOf(batchId, RecordKind.Batch);
        return MerkleProof.verifyCalldata(proof, batchId, leaf);
    }

    /// @inheritdoc IProvenanceLedger
    function version() external pure returns (string memory) {
        return VERSION;
    }

    /// @dev Checks, writes and announces one dataset: what {registerDataset} and every item of
    /// {registerDatasets} do, so the two cannot drift apart.
    function _registerDataset(
        bytes32 contentHash,
        bytes32 rowsRoot,
        uint64 rowCount,
        bytes32 schemaHash,
        bytes32 metadataHash,
        bytes32[] calldata parents,
        bytes32 transformHash
    ) private {
        if ((parents.length == 0) != (transformHash == bytes32(0))) {
            revert InconsistentDerivation(contentHash, parents.length, transformHash);
        }
        _requireLive(parents, RecordKind.Dataset);
        _register(contentHash, RecordKind.Dataset);
        emit DatasetRegistered(
            contentHash, msg.sender, rowsRoot, rowCount, schemaHash, metadataHash, parents, transformHash
        );
    }

    /// @dev Checks, writes and announces one model ({registerModel}, {registerModels}).
    function _registerModel(bytes32 modelHash, bytes32[] calldata datasets, bytes32 metadataHash)
        private
    {
        if (datasets.length == 0) revert NoTrainingData(modelHash);
        _requireLive(datasets, RecordKind.Dataset);
        _register(modelHash, RecordKind.Model);
        emit ModelRegistered(modelHash, msg.sender, datasets, metadataHash);
    }

    /// @dev Checks, writes and announces one prediction batch ({anchorPredictions},
    /// {anchorPredictionBatches}).
    function _anchorPredictions(bytes32 modelHash, bytes32 root, uint64 count) private {
        if (count == 0) revert EmptyBatch(root);
        _requireLive(modelHash, RecordKind.Model);
        _register(root, RecordKind.Batch);
        emit PredictionsAnchored(root, modelHash, msg.sender, count);
    }

    /// @dev The single storage write path: zero and duplicate checks, then one packed slot.
    /// A successor also asks its predecessor (one call, which may chain further) whether the
    /// hash is an older generation's record: write once holds across generations.
    /// An unregistered slot is all zero (nothing is ever deleted, and only a registered record
    /// can be revoked), so `revoked` is already false. Assigning the fields through one storage
    /// pointer lets the optimizer write the slot once; a `Record({...})` literal compiles to a
    /// second SSTORE and two more SLOADs (847 gas a record in a batch of 100, measured).
    function _register(bytes32 recordHash, RecordKind kind) private {
        if (recordHash == bytes32(0)) revert ZeroRecordHash();
        Record storage record = _records[recordHash];
        RecordKind existing = record.kind;
        if (existing == RecordKind.None && _PREDECESSOR != address(0)) {
            existing = _older(recordHash).kind;
        }
        if (existing != RecordKind.None) revert RecordAlreadyRegistered(recordHash, existing);
        record.kind = kind;
        record.registeredAt = uint40(block.timestamp);
        record.registrant = msg.sender;
    }

    /// @dev Reverts unless every hash is a registered, unrevoked record of `kind`.
    function _requireLive(bytes32[] calldata hashes, RecordKind kind) private view {
        for (uint256 i = 0; i < hashes.length; ++i) {
            _requireLive(hashes[i], kind);
        }
    }

    /// @dev Reverts unless `recordHash` is a registered, unrevoked record of `kind`. Reads the
    /// two fields it needs from storage (no memory copy of the record), and asks the predecessor
    /// only for a record not held here.
    function _requireLive(bytes32 recordHash, RecordKind kind) private view {
        Record storage stored = _records[recordHash];
        RecordKind found = stored.kind;
        bool revoked = stored.revoked;
        if (found == RecordKind.None && _PREDECESSOR != address(0)) {
            Record memory older = _older(recordHash);
            found = older.kind;
            revoked = older.revoked;
        }
        if (found == RecordKind.None || found != kind) revert UnknownRecord(recordHash, kind);
        if (revoked) revert RecordIsRevoked(recordHash);
    }

    /// @dev The record of `kind` under `recordHash` (any registered kind when `kind` is None).
    function _recordOf(bytes32 recordHash, RecordKind kind) private view returns (Record memory record) {
        record = _lookup(recordHash);
        if (record.kind == RecordKind.None || (kind != RecordKind.None && record.kind != kind)) {
            revert UnknownRecord(recordHash, kind);
        }
    }

    /// @dev The record under `recordHash` here, else in the nearest earlier generation that
    /// holds it: one external call per generation walked, and none for a record held here or
    /// for a first generation.
    function _lookup(bytes32 recordHash) private view returns (Record memory record) {
        record = _records[recordHash];
        if (record.kind == RecordKind.None && _PREDECESSOR != address(0)) {
            record = _older(recordHash);
        }
    }

    /// @dev The record under `recordHash` in the earlier generations (kind None if unknown).
    function _older(bytes32 recordHash) private view returns (Record memory) {
        return IProvenanceLedger(_PREDECESSOR).getRecord(recordHash);
    }
}
